"""Offline analysis: what libphonenumber's metadata alone can say about a number.

The honesty rule lives here. Offline we know whether a number *parses*, whether its range is
*allocated*, the range's *type* and the carrier the range was *allocated to*. We do not know
whether a subscriber holds the number, whether it was ported, or which network serves it now,
so an offline result never says ``live``/``dead``, never sets ``is_ported`` and never fills
the MCC/MNC fields. Verdicts:

=============================================  =========  ===============================
case                                           verdict    type / status
=============================================  =========  ===============================
does not parse, or not a possible length       wrong      bad_format / not_applicable
parses, possible, range not allocated          wrong      unknown / not_applicable
allocated range (any type, landline too)       unknown    mapped type / offline_status()
=============================================  =========  ===============================

A landline in an allocated range stays ``unknown``: no lookup can tell a connected landline
from a disconnected one, and "the range exists" is not evidence that this line does.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import phonenumbers

# Importing carrier loads every carrier table (a few MB) once, at import time, so the first
# analysed number does not pay for it and forked workers share the pages.
from phonenumbers import carrier
from phonenumbers.phonemetadata import PhoneMetadata
from phonenumbers.phonenumberutil import (
    _number_type_helper,  # private, but it is exactly what number_type() calls
    is_mobile_number_portable_region,
)

from ..base import PhoneResult
from .numbering import e164, parse_phone
from .typemap import LIBPHONENUMBER_TYPE_NAMES, LIBPHONENUMBER_TYPES, offline_status

# Only these range types have a meaningful allocated carrier in libphonenumber's data; this
# is the same rule ``carrier.name_for_number`` applies, without computing the type twice.
_CARRIER_TYPES = frozenset(
    {
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        phonenumbers.PhoneNumberType.PAGER,
    }
)


class PhoneAnalysis(NamedTuple):
    """Offline facts about one input; a plain tuple, cheap to build and to compare."""

    e164: str | None  # None: unparseable or impossible length (syntax error)
    country: str | None  # ISO 3166 region of the range, "001" for non-geographic
    libphonenumber_type: str | None  # e.g. "FIXED_LINE_OR_MOBILE"; None if unparseable
    type: str  # guide enum (bad_format when unparseable)
    valid_range: bool
    operator: str | None  # carrier the range was allocated to, in English
    number_portability: bool  # the country lets subscribers keep numbers across carriers

    @property
    def is_syntax_error(self) -> bool:
        return self.e164 is None


def type_and_region(number: phonenumbers.PhoneNumber) -> tuple[int, str | None]:
    """``(number_type(number), region_code_for_number(number))`` for the price of one.

    phonenumbers.number_type() finds the region internally and throws it away; finding it
    again costs as much as the type itself (for +1 it tries up to 25 regions). This is the
    body of number_type() keeping the region; a test checks both answers against the
    public functions.
    """
    region = phonenumbers.region_code_for_number(number)
    if region is None or number.country_code is None:  # number_type() finds no metadata
        return phonenumbers.PhoneNumberType.UNKNOWN, region
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(number.country_code, region)
    if metadata is None:
        return phonenumbers.PhoneNumberType.UNKNOWN, region
    nsn = phonenumbers.national_significant_number(number)
    return _number_type_helper(nsn, metadata), region


def _sole_region(number: phonenumbers.PhoneNumber) -> str | None:
    # An unallocated range still belongs to its country code; name the country only when
    # the code has one (+44 -> GB, but +1 is shared by 25 regions and stays None).
    if number.country_code is None:
        return None
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(number.country_code, ())
    return regions[0] if len(regions) == 1 else None


_SYNTAX_ERROR = PhoneAnalysis(None, None, None, "bad_format", False, None, False)


def analyze(raw: str, region: str | None) -> PhoneAnalysis:
    """Analyse one number written in any form, ``region`` being the default country."""
    number = parse_phone(raw, region)
    if number is None:
        return _SYNTAX_ERROR
    number_type, country = type_and_region(number)
    # The type is UNKNOWN exactly when the number matches no allocated range of its region,
    # which is what is_valid_number() checks; reusing it halves the pattern matching.
    valid = number_type != phonenumbers.PhoneNumberType.UNKNOWN
    if not valid:
        country = _sole_region(number)
    operator = None
    if number_type in _CARRIER_TYPES:
        operator = carrier.name_for_valid_number(number, "en") or None
    return PhoneAnalysis(
        e164=e164(number),
        country=country,
        libphonenumber_type=LIBPHONENUMBER_TYPE_NAMES[number_type],
        type=LIBPHONENUMBER_TYPES[number_type] if valid else "unknown",
        valid_range=valid,
        operator=operator,
        number_portability=bool(country and is_mobile_number_portable_region(country)),
    )


def base_extra(analysis: PhoneAnalysis) -> dict[str, Any]:
    """The extra fields every phone result carries, always with the same keys.

    Exports add extra fields as columns, so a stable key set keeps every row aligned.
    """
    return {
        "country": analysis.country,
        "libphonenumber_type": analysis.libphonenumber_type,
        "operator_source": "range_allocation" if analysis.operator else None,
        "number_portability": analysis.number_portability,
        "evidence": "offline",
        "provider_line_type": None,
        "original_operator": None,
        "lookup_error": None,
    }


def offline_result(analysis: PhoneAnalysis) -> PhoneResult:
    """The final result when no live lookup stands behind the number (see module table)."""
    extra = base_extra(analysis)
    if analysis.is_syntax_error:
        result = PhoneResult.syntax_error()
        result.extra = extra
        return result
    if not analysis.valid_range:
        return PhoneResult(
            valid=False,
            wrong=True,
            unknown=False,
            type="unknown",
            status="not_applicable",
            extra=extra,
        )
    return PhoneResult(
        valid=False,
        wrong=False,
        unknown=True,
        type=analysis.type,
        status=offline_status(analysis.type),
        operator=analysis.operator,
        extra=extra,
    )
