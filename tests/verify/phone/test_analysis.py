"""Offline analysis over a table of numbers from several countries and written forms."""

from __future__ import annotations

import phonenumbers
import pytest

from apexverify.verify.base import PHONE_STATUSES, PHONE_TYPES
from apexverify.verify.phone import analyze, offline_result
from apexverify.verify.phone.analysis import type_and_region
from apexverify.verify.phone.typemap import (
    HLRLOOKUP_TYPES,
    LIBPHONENUMBER_TYPE_NAMES,
    LIBPHONENUMBER_TYPES,
    TWILIO_TYPES,
)

# (raw input, target country, E.164, libphonenumber type, guide type, allocated operator)
# Every number is one phonenumbers' own metadata agrees with (example_number_for_type).
TABLE = [
    # United States: fixed and mobile ranges are shared, so the type is mobile_or_landline
    ("(201) 555-0123", "US", "+12015550123", "FIXED_LINE_OR_MOBILE", "mobile_or_landline", None),
    ("+1 201-555-0123", "GB", "+12015550123", "FIXED_LINE_OR_MOBILE", "mobile_or_landline", None),
    ("1-800-234-5678", "US", "+18002345678", "TOLL_FREE", "toll_free", None),
    ("900 234 5678", "US", "+19002345678", "PREMIUM_RATE", "premium", None),
    ("(500) 234-5678", "US", "+15002345678", "PERSONAL_NUMBER", "unknown", None),
    # United Kingdom
    ("0121 234 5678", "GB", "+441212345678", "FIXED_LINE", "landline", None),
    ("07400 123456", "GB", "+447400123456", "MOBILE", "mobile", "Three"),
    ("+44 7400 123456", "US", "+447400123456", "MOBILE", "mobile", "Three"),
    ("0044 7400 123456", "GB", "+447400123456", "MOBILE", "mobile", "Three"),
    ("0800 123 4567", "GB", "+448001234567", "TOLL_FREE", "toll_free", None),
    ("0901 234 5678", "GB", "+449012345678", "PREMIUM_RATE", "premium", None),
    ("056 1234 5678", "GB", "+445612345678", "VOIP", "voip", None),
    ("070 1234 5678", "GB", "+447012345678", "PERSONAL_NUMBER", "unknown", None),
    ("055 1234 5678", "GB", "+445512345678", "UAN", "unknown", None),
    ("076 4012 3456", "GB", "+447640123456", "PAGER", "pager", None),
    # Singapore
    ("6123 4567", "SG", "+6561234567", "FIXED_LINE", "landline", None),
    ("8123 4567", "SG", "+6581234567", "MOBILE", "mobile", "SingTel"),
    ("+65 8123 4567", "DE", "+6581234567", "MOBILE", "mobile", "SingTel"),
    ("1800 123 4567", "SG", "+6518001234567", "TOLL_FREE", "toll_free", None),
    ("3123 4567", "SG", "+6531234567", "VOIP", "voip", None),
    # Germany
    ("030 123456", "DE", "+4930123456", "FIXED_LINE", "landline", None),
    ("01512 3456789", "DE", "+4915123456789", "MOBILE", "mobile", "T-Mobile"),
    ("+49 1512 3456789", "FR", "+4915123456789", "MOBILE", "mobile", "T-Mobile"),
    ("0800 1234567890", "DE", "+498001234567890", "TOLL_FREE", "toll_free", None),
    ("0180 1 2345", "DE", "+4918012345", "SHARED_COST", "shared_cost", None),
    ("0177 99 1234567", "DE", "+49177991234567", "VOICEMAIL", "voicemail_only", None),
    # France
    ("01 23 45 67 89", "FR", "+33123456789", "FIXED_LINE", "landline", None),
    ("06 12 34 56 78", "FR", "+33612345678", "MOBILE", "mobile", "SFR"),
    ("+33 (0)6 12 34 56 78", "US", "+33612345678", "MOBILE", "mobile", "SFR"),
    ("09 12 34 56 78", "FR", "+33912345678", "VOIP", "voip", None),
    ("0 884 01 23 45", "FR", "+33884012345", "SHARED_COST", "shared_cost", None),
    ("0 891 12 34 56", "FR", "+33891123456", "PREMIUM_RATE", "premium", None),
    # India
    ("081234 56789", "IN", "+918123456789", "MOBILE", "mobile", "Tata Docomo"),
    ("+91 81234 56789", "US", "+918123456789", "MOBILE", "mobile", "Tata Docomo"),
    ("1800 12 3456", "IN", "+911800123456", "TOLL_FREE", "toll_free", None),
    ("1860 345 1234", "IN", "+9118603451234", "SHARED_COST", "shared_cost", None),
    # Japan and Australia, for good measure
    ("090-1234-5678", "JP", "+819012345678", "MOBILE", "mobile", "KDDI"),
    ("03-1234-5678", "JP", "+81312345678", "FIXED_LINE", "landline", None),
    ("0412 345 678", "AU", "+61412345678", "MOBILE", "mobile", "Optus"),
]


@pytest.mark.parametrize(("raw", "region", "e164", "lib_type", "guide_type", "operator"), TABLE)
def test_table(
    raw: str, region: str, e164: str, lib_type: str, guide_type: str, operator: str | None
) -> None:
    analysis = analyze(raw, region)
    assert analysis.e164 == e164
    assert analysis.valid_range is True
    assert analysis.libphonenumber_type == lib_type
    assert analysis.type == guide_type
    assert analysis.operator == operator
    # The shortcut (type != UNKNOWN) must agree with libphonenumber's own validity check.
    assert phonenumbers.is_valid_number(phonenumbers.parse(e164)) is True

    result = offline_result(analysis)
    assert result.verdict == "unknown"  # an allocated range alone is not evidence
    assert result.type == guide_type
    assert result.is_syntax_error is False
    assert result.is_ported is False
    assert result.current_network_mcc is None
    assert result.current_network_mnc is None
    expected_status = (
        "inconclusive"
        if guide_type in {"mobile", "mobile_or_landline", "unknown"}
        else "not_applicable"
    )
    assert result.status == expected_status
    assert result.operator == operator
    assert result.extra["operator_source"] == ("range_allocation" if operator else None)
    assert result.extra["evidence"] == "offline"


# Parsable, possible length, but outside every allocated range.
UNALLOCATED = [
    ("+1 999 999 9999", "US"),
    ("(800) 123-4567", "US"),  # toll-free code, but NXX starting with 1 is never assigned
    ("07700 900000", "GB"),  # Ofcom drama range: reserved for fiction, never allocated
    ("+33 0 12 34 56 78", "FR"),
    ("00000000", "SG"),
]


@pytest.mark.parametrize(("raw", "region"), UNALLOCATED)
def test_unallocated_range_is_wrong_not_syntax_error(raw: str, region: str) -> None:
    analysis = analyze(raw, region)
    assert analysis.e164 is not None
    assert analysis.valid_range is False
    assert phonenumbers.is_valid_number(phonenumbers.parse(analysis.e164)) is False
    result = offline_result(analysis)
    assert result.verdict == "wrong"
    assert result.is_syntax_error is False
    assert result.type == "unknown"
    assert result.status == "not_applicable"
    assert result.operator is None


SYNTAX_ERRORS = [
    ("", "US"),
    ("   ", "US"),
    ("not a number", "US"),
    ("12", "US"),
    ("555-0123", "US"),  # local-only: no area code, so no E.164 form
    ("+44 12", "GB"),
    ("+1 201 555 0123 4567 8901", "US"),  # too long
    ("0612345678", "ZZ"),  # national form with no usable default country
    ("+999 1234 5678", "US"),  # unassigned country code
    ("1" * 300, "US"),
]


@pytest.mark.parametrize(("raw", "region"), SYNTAX_ERRORS)
def test_syntax_errors(raw: str, region: str) -> None:
    analysis = analyze(raw, region)
    assert analysis.e164 is None
    result = offline_result(analysis)
    assert result.is_syntax_error is True
    assert result.verdict == "wrong"
    assert result.type == "bad_format"
    assert result.status == "not_applicable"


def test_extra_keys_are_the_same_for_every_outcome() -> None:
    keys = {
        frozenset(offline_result(analyze(raw, region)).extra)
        for raw, region in [("07400 123456", "GB"), ("+1 999 999 9999", "US"), ("x", "US")]
    }
    assert len(keys) == 1


def test_number_portability_flag_comes_from_metadata() -> None:
    assert analyze("07400 123456", "GB").number_portability is True
    assert analyze("07700 900000", "GB").number_portability is False  # no country known


def test_type_maps_cover_everything_and_stay_in_the_enum() -> None:
    assert set(LIBPHONENUMBER_TYPES) == set(LIBPHONENUMBER_TYPE_NAMES)
    for mapping in (LIBPHONENUMBER_TYPES, HLRLOOKUP_TYPES, TWILIO_TYPES):
        assert set(mapping.values()) <= set(PHONE_TYPES)
    # Twilio's documented values, all mapped
    assert set(TWILIO_TYPES) == {
        "landline",
        "mobile",
        "fixedVoip",
        "nonFixedVoip",
        "personal",
        "tollFree",
        "premium",
        "sharedCost",
        "uan",
        "voicemail",
        "pager",
        "unknown",
    }
    assert "bad_format" not in LIBPHONENUMBER_TYPES.values()
    assert {"inconclusive", "not_applicable"} <= set(PHONE_STATUSES)


def test_type_and_region_agrees_with_public_functions() -> None:
    # The benchmark's generator gives a realistic mix of countries, forms and bad ranges.
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
    from phone_offline import generate  # type: ignore[import-not-found]

    checked = 0
    for raw in generate(3000, "US", seed=7) + [row[0] for row in TABLE]:
        try:
            number = phonenumbers.parse(raw, "US")
        except phonenumbers.NumberParseException:
            continue
        number_type, region = type_and_region(number)
        assert number_type == phonenumbers.number_type(number)
        assert region == phonenumbers.region_code_for_number(number)
        valid = number_type != phonenumbers.PhoneNumberType.UNKNOWN
        assert valid == phonenumbers.is_valid_number(number)
        checked += 1
    assert checked > 2500
