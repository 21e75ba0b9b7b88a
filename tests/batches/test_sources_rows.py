"""``convert`` and the interface of the output side: every original row back, in order, the
i-th row the one whose value has ``seq == i`` after the real parse (``parsing.iter_chunks``)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from apexverify.batches.parsing import iter_chunks
from apexverify.batches.sources import TableRequest, convert, iter_source_rows, source_header
from apexverify.errors import ParseError
from apexverify.storage import LocalStorage
from tests.support import table_files


def _batch(tmp: Path, content: bytes, column: str = "auto", header: str = "auto", **kw: Any) -> Any:
    original, derived = tmp / "original", tmp / "derived.txt"
    original.write_bytes(content)
    converted = convert(original, derived, TableRequest(column, header), "email", kw.get("name"))
    return SimpleNamespace(
        source_format=converted.format,
        source_path=str(original),
        source_options=converted.options,
        file_path=str(derived),
        record_type="email",
    )


def _parsed(batch: Any) -> dict[int, str]:
    return {seq: value for chunk in iter_chunks(Path(batch.file_path)) for seq, value in chunk}


def test_seq_is_the_data_row_index(tmp_path: Path) -> None:
    table = table_files.hubspot_csv()
    batch = _batch(tmp_path, table.content)
    rows = list(iter_source_rows(LocalStorage(), batch))
    assert rows == table.rows
    parsed = _parsed(batch)
    assert parsed == {i: row[2].strip() for i, row in enumerate(rows) if row[2].strip()}
    assert 4 not in parsed  # the blank email: no record, but its row is there


def test_short_and_long_rows_are_padded_to_the_widest(tmp_path: Path) -> None:
    batch = _batch(tmp_path, b"Email,Name\na@example.com\nb@example.com,Bo,extra\n\n")
    assert source_header(batch) == ["Email", "Name", "Column 3"]
    assert list(iter_source_rows(LocalStorage(), batch)) == [
        ["a@example.com", "", ""],
        ["b@example.com", "Bo", "extra"],
        ["", "", ""],  # a blank line of a CSV is a row
    ]


def test_excel_sep_line_and_crlf(tmp_path: Path) -> None:
    batch = _batch(tmp_path, b"sep=;\r\nName;Email\r\nAnn;ann@example.com\r\n")
    assert batch.source_options["delimiter"] == ";"
    assert source_header(batch) == ["Name", "Email"]
    assert list(iter_source_rows(LocalStorage(), batch)) == [["Ann", "ann@example.com"]]


def test_a_plain_upload_reads_as_one_column(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"a@example.com\r\n\n  \nb@example.com\nlast@example.com")
    batch = SimpleNamespace(
        source_format=None,
        source_path=None,
        source_options=None,
        file_path=str(plain),
        record_type="email",
    )
    assert source_header(batch) == ["email"]
    rows = list(iter_source_rows(LocalStorage(), batch))
    assert rows == [["a@example.com"], [""], ["  "], ["b@example.com"], ["last@example.com"]]
    parsed = _parsed(batch)
    assert {seq: rows[seq][0].strip() for seq in parsed} == parsed


def test_a_workbook_number_column(tmp_path: Path) -> None:
    table = table_files.xlsx(tmp_path)
    batch = _batch(tmp_path, table.content, column="Phone", name="x.xlsx")
    assert Path(batch.file_path).read_text() == "12025550143\n12025550188\n12025550199\n\n"
    assert batch.source_options["sheet"] == "Contacts"


def test_a_csv_field_over_the_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="cannot be read as CSV"):
        _batch(tmp_path, b'Email,Note\na@example.com,"' + b"x" * 200_000 + b'"\n')


def test_too_many_columns_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="Row 1 of the file has more than 1000 columns"):
        _batch(tmp_path, b"Email" + b",x" * 5000 + b"\na@example.com\n")
    with pytest.raises(ParseError, match="Data row 201 has more than 1000 columns"):
        _batch(tmp_path, b"Email\n" + b"a@example.com\n" * 200 + b"b@example.com" + b",x" * 5000)
