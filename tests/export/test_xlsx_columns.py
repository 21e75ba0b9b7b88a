"""XLSX columns: documented fields from the result dataclasses, then every extra key the rows
hold, then an ``extra`` overflow column, so the workbook carries every key of the JSON export."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from apexverify.export import xlsx_export
from apexverify.export.columns import (
    KNOWN_EXTRA_COLUMNS,
    OVERFLOW_COLUMN,
    collect_extra_columns,
    documented_columns,
    extra_columns_for,
)
from apexverify.export.json_export import record_object
from apexverify.export.xlsx_export import write_xlsx
from apexverify.verify.base import EmailResult, PhoneResult
from apexverify.verify.email.verdicts import EXTRA_FIELDS, Evidence, Flags, decide
from apexverify.verify.phone.analysis import analyze, base_extra, offline_result
from apexverify.verify.phone.engine import merge
from apexverify.verify.phone.lookup import LookupResult
from apexverify.verify.sandbox import sandbox_email, sandbox_phone

Rows = list[tuple[str, dict[str, Any] | None]]


def _email_rows() -> Rows:
    """What the email engine stores: every documented field plus its extras."""
    ok = decide(
        Evidence.ACCEPTED,
        Flags(is_free=True),
        final=True,
        retry_after=0,
        extra={
            "did_you_mean": "ann@gmail.com",
            "reason": "250 accepted",
            "mx_host": "gmail-smtp-in.l.google.com",
            "mx_provider": "Google",
            "smtp_code": 250,
            "smtp_enhanced_code": "2.1.5",
            "smtp_reply": '=HYPERLINK("http://evil")',  # hostile server text
            "catch_all": "no",
        },
    )
    bad = decide(
        Evidence.NXDOMAIN,
        Flags(),
        final=True,
        retry_after=0,
        extra={"reason": "NXDOMAIN", "smtp_code": None},
    )
    assert isinstance(ok, EmailResult)
    assert isinstance(bad, EmailResult)
    return [
        ("ann@gmial.com", ok.to_dict()),
        ("bob@nowhere.invalid", bad.to_dict()),
        ("role@shop.io", sandbox_email("role@shop.io").to_dict()),  # the sandbox: no extras
    ]


def _phone_rows() -> Rows:
    """What the phone engine stores: offline results, a provider merge, a lookup error."""
    us = analyze("+1 415 555 2671", "US")
    live = merge(
        us,
        LookupResult(
            status="live",
            type="mobile",
            provider_line_type="nonFixedVoip",
            is_ported=True,
            mcc="310",
            mnc="260",
            operator="T-Mobile",
            original_operator="AT&T",
        ),
        "twilio",
    )
    failed = merge(analyze("07400 123456", "GB"), LookupResult(error="not found"), "twilio")
    rows: Rows = [
        ("+14155552671", live.to_dict()),
        ("+447400123456", failed.to_dict()),
        ("+19999999999", offline_result(analyze("+1 999 999 9999", "US")).to_dict()),
        ("x", offline_result(analyze("x", "US")).to_dict()),
        ("+15550000000", sandbox_phone("+15550000000").to_dict()),
    ]
    assert live.extra["provider_line_type"] == "nonFixedVoip"
    assert failed.extra["lookup_error"] == "not found"
    return rows


def _read(path: Path, sheet: str = "Results") -> tuple[list[str], list[dict[str, Any]]]:
    book = openpyxl.load_workbook(path)
    lines = list(book[sheet].iter_rows(values_only=True))
    header = [str(name) for name in lines[0]]
    return header, [dict(zip(header, line, strict=True)) for line in lines[1:]]


def _assert_every_json_key_has_its_column(record_type: str, rows: Rows, path: Path) -> None:
    header, table = _read(path)
    assert len(header) == len(set(header))
    assert len(table) == len(rows)
    for (value, result), line in zip(rows, table, strict=True):
        expected = record_object(record_type, value, result, details=True)  # the JSON export
        for key, item in expected.items():
            assert key in header, key
            assert line[key] == item, (value, key)
        assert line[OVERFLOW_COLUMN] is None  # nothing left over


@pytest.mark.parametrize("record_type", ["email", "phone"])
@pytest.mark.parametrize("explicit", [False, True])
def test_every_json_key_of_every_row_is_a_column(
    tmp_path: Path, record_type: str, explicit: bool
) -> None:
    rows = _email_rows() if record_type == "email" else _phone_rows()
    extras = collect_extra_columns(record_type, (r for _, r in rows)) if explicit else None
    path = tmp_path / "r.xlsx"
    assert write_xlsx(path, record_type, [], rows, extra_columns=extras) == len(rows)
    _assert_every_json_key_has_its_column(record_type, rows, path)
    header, _ = _read(path)
    documented = list(documented_columns(record_type))
    assert header[: len(documented)] == documented
    assert header[-1] == OVERFLOW_COLUMN


def test_documented_columns_come_from_the_dataclasses() -> None:
    for record_type, cls in (("email", EmailResult), ("phone", PhoneResult)):
        names = [f.name for f in dataclasses.fields(cls) if f.name != "extra"]
        assert documented_columns(record_type) == (record_type, *names)
    with pytest.raises(ValueError, match="unknown record type"):
        documented_columns("fax")


def test_email_extras_follow_the_documented_fields(tmp_path: Path) -> None:
    path = tmp_path / "r.xlsx"
    write_xlsx(path, "email", [], _email_rows())
    header, table = _read(path)
    assert header == [*documented_columns("email"), *EXTRA_FIELDS, OVERFLOW_COLUMN]
    first = table[0]
    assert first["reason"] == "250 accepted"
    assert first["evidence"] == "accepted"
    assert first["did_you_mean"] == "ann@gmail.com"
    assert first["mx_host"] == "gmail-smtp-in.l.google.com"
    assert first["smtp_code"] == 250
    assert first["smtp_reply"] == '=HYPERLINK("http://evil")'


def test_extra_values_are_never_formulas(tmp_path: Path) -> None:
    path = tmp_path / "r.xlsx"
    write_xlsx(path, "email", [], _email_rows())
    sheet = openpyxl.load_workbook(path)["Results"]
    header = [cell.value for cell in sheet[1]]
    cell = sheet.cell(row=2, column=header.index("smtp_reply") + 1)
    assert cell.data_type == "s"
    assert cell.quotePrefix


def test_known_extras_are_the_keys_the_engines_emit() -> None:
    assert KNOWN_EXTRA_COLUMNS["email"] == EXTRA_FIELDS
    assert not sandbox_email("valid@example.com").extra
    phone_keys = set(base_extra(analyze("+1 415 555 2671", "US")))
    phone_keys |= set(sandbox_phone("+15550000000").extra)
    for _, result in _phone_rows():
        assert result is not None
        phone_keys |= set(result) - set(documented_columns("phone"))
    assert phone_keys == set(KNOWN_EXTRA_COLUMNS["phone"])


def _with(result: Mapping[str, Any] | None, **extra: Any) -> dict[str, Any]:
    return {**(result or {}), **extra}


def test_an_unknown_key_on_an_early_row_gets_its_own_column(tmp_path: Path) -> None:
    rows = _email_rows()
    rows[1] = (rows[1][0], _with(rows[1][1], spam_score=0.7, tags=["a", "b"]))
    path = tmp_path / "r.xlsx"
    write_xlsx(path, "email", [], rows)
    header, table = _read(path)
    assert header[-3:] == ["spam_score", "tags", OVERFLOW_COLUMN]
    assert table[1]["spam_score"] == 0.7
    assert table[1]["tags"] == '["a","b"]'
    assert table[0]["spam_score"] is None


def test_an_unknown_key_past_the_lookahead_goes_to_the_extra_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(xlsx_export, "LOOKAHEAD_ROWS", 2)
    rows = _phone_rows()
    late = _with(rows[3][1], risk={"score": 3}, extra="kept")
    rows[3] = (rows[3][0], late)
    path = tmp_path / "r.xlsx"
    write_xlsx(path, "phone", [], rows, max_rows_per_sheet=3)
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["Summary", "Results", "Results 2", "Results 3"]
    headers = {tuple(c.value for c in book[name][1]) for name in book.sheetnames[1:]}
    assert len(headers) == 1  # the same layout on every sheet
    assert "risk" not in next(iter(headers))
    _, table = _read(path, "Results 2")
    assert json.loads(table[1][OVERFLOW_COLUMN]) == {"risk": {"score": 3}, "extra": "kept"}
    assert table[1]["country"] is None  # the documented and known columns still filled
    assert table[1]["phone"] == "x"
    assert table[1]["is_syntax_error"] is True


def test_explicit_columns_set_the_order_and_undeclared_keys_overflow(tmp_path: Path) -> None:
    rows = _email_rows()
    path = tmp_path / "r.xlsx"
    write_xlsx(path, "email", [], rows, extra_columns=["smtp_code", "valid", "reason", "reason"])
    header, table = _read(path)
    assert header == [*documented_columns("email"), "smtp_code", "reason", OVERFLOW_COLUMN]
    assert table[0]["smtp_code"] == 250
    rest = json.loads(table[0][OVERFLOW_COLUMN])
    assert rest["mx_host"] == "gmail-smtp-in.l.google.com"
    assert set(rest) == set(EXTRA_FIELDS) - {"smtp_code", "reason"}
    assert table[2][OVERFLOW_COLUMN] is None  # the sandbox row has no extras


def test_extra_columns_for_puts_known_keys_first() -> None:
    keys = ["zeta", "valid", "smtp_code", "email", "alpha", "reason", "zeta"]
    assert extra_columns_for("email", keys) == ["reason", "smtp_code", "zeta", "alpha"]


def _none_results(n: int) -> Iterable[tuple[str, dict[str, Any] | None]]:
    return ((f"u{i}@example.com", None) for i in range(n))


def test_rows_without_result_and_empty_exports(tmp_path: Path) -> None:
    path = tmp_path / "r.xlsx"
    assert write_xlsx(path, "email", [], _none_results(3)) == 3
    header, table = _read(path)
    assert [line["email"] for line in table] == [
        "u0@example.com",
        "u1@example.com",
        "u2@example.com",
    ]
    assert all(line["valid"] is None for line in table)
    empty = tmp_path / "e.xlsx"
    assert write_xlsx(empty, "phone", [("Batch", "b")], []) == 0
    header, table = _read(empty)
    assert header == [*documented_columns("phone"), *KNOWN_EXTRA_COLUMNS["phone"], "extra"]
    assert table == []
