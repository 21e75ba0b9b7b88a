"""Phone numbering: normalization to E.164 used at parse time and by the engine.

``normalize_phone`` runs on every row of an uploaded file (millions of rows, in a process
pool), so it does the least work that still gives a correct answer: one ``parse`` and one
length check. Range validity and number type are *not* decided here; that is the engine's
offline analysis (``analysis.py``), which reports an unallocated range as ``wrong`` rather
than as a syntax error.
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, ValidationResult

# libphonenumber refuses longer input anyway; cutting early keeps hostile cells cheap.
_MAX_INPUT_CHARS = 250


@lru_cache(maxsize=512)
def _region(region: str | None) -> str | None:
    # Uploads and API callers pass "us", "GB ", "" ... phonenumbers wants "US" or None.
    if not region:
        return None
    cleaned = region.strip().upper()
    return cleaned or None


def parse_phone(raw: str, region: str | None) -> PhoneNumber | None:
    """Parse ``raw`` with ``region`` as default, or ``None`` unless it has a possible length.

    "Possible" means ``IS_POSSIBLE`` exactly: a ``IS_POSSIBLE_LOCAL_ONLY`` number (a US
    seven-digit number without its area code) has no E.164 form, so it is refused here.
    """
    if not raw or len(raw) > _MAX_INPUT_CHARS:
        return None
    try:
        number = phonenumbers.parse(raw, _region(region))
    except NumberParseException:
        return None
    if phonenumbers.is_possible_number_with_reason(number) != ValidationResult.IS_POSSIBLE:
        return None
    return number


def e164(number: PhoneNumber) -> str:
    """E.164 text of a parsed number (extensions are dropped: E.164 has none)."""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_phone(raw: object, region: str) -> str | None:
    """E.164 form of ``raw`` read with ``region`` as default, or ``None`` if impossible.

    Spreadsheet readers hand over ints/floats for numeric cells, so any value is accepted;
    anything but text and numbers is ``None``.
    """
    if isinstance(raw, str):
        text = raw
    elif isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    else:
        text = str(int(raw)) if isinstance(raw, float) and raw.is_integer() else str(raw)
    number = parse_phone(text, region)
    return None if number is None else e164(number)
