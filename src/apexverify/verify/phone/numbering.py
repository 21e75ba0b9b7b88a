"""Phone numbering: normalization to E.164 used at parse time and by the engine."""

from __future__ import annotations

import phonenumbers


def normalize_phone(raw: str, region: str) -> str | None:
    """E.164 form of ``raw`` read with ``region`` as default, or ``None`` if impossible."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
