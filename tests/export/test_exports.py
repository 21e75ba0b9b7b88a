"""JSON and XLSX writers."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl

from apexverify.export.json_export import stream_json
from apexverify.export.xlsx_export import write_xlsx

RESULT = {"valid": True, "wrong": False, "unknown": False, "quality": "good", "result": "ok"}


def test_json_stream_is_one_valid_object_in_pieces() -> None:
    rows = ((f"u{i}@example.com", RESULT) for i in range(5000))
    pieces = list(stream_json("email", rows, details=True, statistics={"n": 5000}))
    assert len(pieces) > 1
    data = json.loads(b"".join(pieces))
    assert len(data) == 5001
    assert data["u7@example.com"]["email"] == "u7@example.com"
    assert data["_statistics"] == {"n": 5000}


def test_json_without_details_keeps_the_verdict_only() -> None:
    data = json.loads(
        b"".join(stream_json("email", [("a@b.com", RESULT)], details=False, statistics=None))
    )
    assert data == {
        "a@b.com": {"email": "a@b.com", "valid": True, "wrong": False, "unknown": False}
    }


def test_xlsx_splits_sheets_and_keeps_summary_first(tmp_path: Path) -> None:
    path = tmp_path / "r.xlsx"
    rows = ((f"u{i}@example.com", RESULT) for i in range(25))
    written = write_xlsx(path, "email", [("Batch", "=cmd")], rows, max_rows_per_sheet=10)
    assert written == 25
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["Summary", "Results", "Results 2", "Results 3"]
    assert book["Summary"]["B1"].value == "=cmd"
    assert book["Summary"]["B1"].data_type == "s"
    counts = [book[name].max_row - 1 for name in book.sheetnames[1:]]
    assert counts == [9, 9, 7]
    assert book["Results"]["A1"].value == "email"
    assert book["Results"]["B2"].value is True
