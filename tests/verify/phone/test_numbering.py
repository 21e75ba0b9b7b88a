"""normalize_phone: the E.164 form the batch parser stores for every row."""

from __future__ import annotations

import pytest

from apexverify.verify.phone import normalize_phone


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(201) 555-0123", "US", "+12015550123"),
        ("201.555.0123", "us", "+12015550123"),  # region case does not matter
        ("+1 201 555 0123", "GB", "+12015550123"),
        ("001 201 555 0123", "GB", "+12015550123"),  # international prefix of GB
        ("011 44 7400 123456", "US", "+447400123456"),  # international prefix of US
        ("07400 123456", "GB", "+447400123456"),
        ("07400 123456", " gb ", "+447400123456"),
        ("+44 (0) 7400 123456", "US", "+447400123456"),
        ("8123 4567", "SG", "+6581234567"),
        ("01512 3456789", "DE", "+4915123456789"),
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("081234 56789", "IN", "+918123456789"),
        ("+91-81234-56789", "US", "+918123456789"),
        ("tel:+44-7400-123456", "US", "+447400123456"),
        ("201-555-0123 ext. 42", "US", "+12015550123"),  # E.164 has no extensions
        ("+1 999 999 9999", "US", "+19999999999"),  # unallocated but possible: engine says wrong
    ],
)
def test_normalizes(raw: str, region: str, expected: str) -> None:
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("", "US"),
        ("abc", "US"),
        ("12", "US"),
        ("555-0123", "US"),  # local only
        ("07400 123456", ""),  # national form, no default country
        ("+999 1234 5678", "US"),
        ("9" * 400, "US"),
    ],
)
def test_refuses(raw: str, region: str) -> None:
    assert normalize_phone(raw, region) is None


def test_numeric_cells_from_spreadsheets() -> None:
    assert normalize_phone(2015550123, "US") == "+12015550123"
    assert normalize_phone(447400123456.0, "GB") == "+447400123456"
    assert normalize_phone(None, "US") is None
    assert normalize_phone(True, "US") is None
