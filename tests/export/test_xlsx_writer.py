"""The XLSX writer: which cells carry Excel's quote-prefix flag (read from the file's styles),
cell types, blanks, sheets past the row limit, the Summary, streaming and errors, on both of
its paths: rustpy-xlsxwriter (a column format flags a whole column, so it is used when that is
exact) and XlsxWriter (a format per cell, used when a column mixes trigger text with other
values)."""

from __future__ import annotations

import enum
import errno
import logging
import re
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from apexverify.export import xlsx_export
from apexverify.export.columns import OVERFLOW_COLUMN, documented_columns
from apexverify.export.xlsx_export import EXCEL_MAX_STRING, write_xlsx
from apexverify.storage.tempfiles import is_disk_full

FALLBACK = "XLSX export by XlsxWriter"
RESULT = {"valid": True, "wrong": False, "unknown": False, "quality": "good", "result": "ok"}
HOSTILE = '=HYPERLINK("http://evil")'
# Texts a reader could take for something else; every one must come back as the same text.
LOOKALIKES = ["123", "TRUE", "FALSE", "1e5", "0044 20 7946 0000", "2026-01-01", "#N/A", " 7"]


def _write(
    path: Path,
    rows: list[tuple[str, dict[str, Any] | None]],
    caplog: pytest.LogCaptureFixture,
    **kwargs: Any,
) -> str:
    """Write and say which writer did it."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=xlsx_export.__name__):
        assert write_xlsx(path, "email", kwargs.pop("summary", []), rows, **kwargs) == len(rows)
    return "xlsxwriter" if FALLBACK in caplog.text else "rustpy"


def _cells(path: Path, sheet: str = "Results") -> dict[str, Any]:
    """The results cells by email."""
    rows = list(openpyxl.load_workbook(path)[sheet].iter_rows(min_row=2))
    return {row[0].value: row for row in rows}


def _mixed(rows: list[tuple[str, dict[str, Any] | None]]) -> None:
    """One hostile address among the ordinary ones: no column format is exact any more."""
    rows.append((HOSTILE, RESULT))


def _quote_prefixed_xfs(path: Path) -> set[int]:
    """The cell formats of the file whose quotePrefix is set, read from styles.xml."""
    styles = zipfile.ZipFile(path).read("xl/styles.xml").decode()
    cell_xfs = re.search(r"<cellXfs[^>]*>(.*?)</cellXfs>", styles, re.S)
    assert cell_xfs
    xfs = re.findall(r"<xf [^>]*?/?>", cell_xfs.group(1))
    return {i for i, xf in enumerate(xfs) if 'quotePrefix="1"' in xf}


@pytest.mark.parametrize("mixed", [False, True], ids=["rustpy", "xlsxwriter"])
def test_only_text_starting_with_a_trigger_carries_the_quote_prefix(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mixed: bool
) -> None:
    replies = {"=1+2": "a@x.io", "+6591234567": "b@x.io", "-2": "c@x.io", "@SUM(A1)": "d@x.io"}
    rows: list[tuple[str, dict[str, Any] | None]] = [
        (email, {**RESULT, "smtp_reply": reply, "smtp_code": 250})
        for reply, email in replies.items()
    ]
    rows.append(("e@x.io", {**RESULT, "smtp_reply": None}))
    if mixed:
        _mixed(rows)
    path = tmp_path / "r.xlsx"
    assert _write(path, rows, caplog) == ("xlsxwriter" if mixed else "rustpy")
    header = [c.value for c in openpyxl.load_workbook(path)["Results"][1]]
    col = header.index("smtp_reply")
    cells = _cells(path)
    for reply, email in replies.items():
        cell = cells[email][col]
        assert (cell.value, cell.data_type) == (reply, "s")  # the text unaltered, not a formula
        assert cell.quotePrefix
    for email in replies.values():
        assert not cells[email][0].quotePrefix  # the addresses next to them
        assert not cells[email][header.index("valid")].quotePrefix  # a boolean
        assert not cells[email][header.index("smtp_code")].quotePrefix  # a number
    assert cells["e@x.io"][col].value is None
    if mixed:
        assert cells[HOSTILE][0].quotePrefix
    # The same, read from the file itself: the flag lives on the xf of those cells only.
    prefixed = _quote_prefixed_xfs(path)
    assert prefixed
    sheet = zipfile.ZipFile(path).read("xl/worksheets/sheet2.xml").decode()
    styled = dict(re.findall(r'<c r="([A-Z]+\d+)"[^>]*? s="(\d+)"', sheet))
    letter = chr(ord("A") + col)
    flagged = {ref for ref, xf in styled.items() if int(xf) in prefixed}
    expected = {f"{letter}{row}" for row in range(2, 6)} | ({"A7"} if mixed else set())
    assert flagged == expected


def test_a_column_of_e164_numbers_is_flagged_by_its_column_format(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [(f"+659123456{i}", {**RESULT, "quality": "-"}) for i in range(4)]
    path = tmp_path / "r.xlsx"
    assert write_xlsx(path, "phone", [("Batch", "b")], rows) == 4
    assert FALLBACK not in caplog.text
    sheet = openpyxl.load_workbook(path)["Results"]
    for row in sheet.iter_rows(min_row=2):
        assert row[0].data_type == "s"
        assert row[0].value.startswith("+659123456")
        assert row[0].quotePrefix
        assert row[1].value is True
        assert not row[1].quotePrefix


def test_each_sheet_gets_its_own_column_formats(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Flagged addresses on one sheet, plain ones on the next: both exact without XlsxWriter."""
    rows: list[tuple[str, dict[str, Any] | None]] = [("-a@x.io", RESULT), ("+b@x.io", RESULT)]
    rows += [("c@x.io", RESULT), ("d@x.io", RESULT)]
    path = tmp_path / "r.xlsx"
    assert _write(path, rows, caplog, max_rows_per_sheet=3) == "rustpy"
    book = openpyxl.load_workbook(path)
    assert [c[0].quotePrefix for c in book["Results"].iter_rows(min_row=2)] == [True, True]
    assert [c[0].quotePrefix for c in book["Results 2"].iter_rows(min_row=2)] == [False, False]


@pytest.mark.parametrize("mixed", [False, True], ids=["rustpy", "xlsxwriter"])
def test_types_survive(tmp_path: Path, caplog: pytest.LogCaptureFixture, mixed: bool) -> None:
    class Verdict(enum.StrEnum):
        GOOD = "good"

    extra: dict[str, Any] = {f"look{i}": text for i, text in enumerate(LOOKALIKES)}
    extra |= {
        "n_int": 250,
        "n_big": 2**70,
        "n_float": 0.5,
        "n_nan": float("nan"),
        "n_inf": float("-inf"),
        "flag": False,
        "nothing": None,
        "tags": ["a", "b"],
        "detail": {"k": 1},
        "enum": Verdict.GOOD,
        "long": "x" * (EXCEL_MAX_STRING + 10),
    }
    rows: list[tuple[str, dict[str, Any] | None]] = [("a@x.io", {**RESULT, **extra})]
    rows.append(("b@x.io", None))  # no result: every result cell blank
    if mixed:
        _mixed(rows)
    path = tmp_path / "r.xlsx"
    assert _write(path, rows, caplog, extra_columns=list(extra)) == (
        "xlsxwriter" if mixed else "rustpy"
    )
    sheet = openpyxl.load_workbook(path)["Results"]
    header = [c.value for c in sheet[1]]
    first = {name: cell for name, cell in zip(header, sheet[2], strict=True)}
    for i, text in enumerate(LOOKALIKES):
        assert (first[f"look{i}"].value, first[f"look{i}"].data_type) == (text, "s")
    assert (first["valid"].value, first["valid"].data_type) == (True, "b")
    assert (first["flag"].value, first["flag"].data_type) == (False, "b")
    assert (first["n_int"].value, first["n_int"].data_type) == (250, "n")
    assert first["n_big"].value == pytest.approx(2.0**70)
    assert first["n_float"].value == 0.5
    assert (first["n_nan"].value, first["n_inf"].value) == ("nan", "-inf")  # XLSX has neither
    assert first["tags"].value == '["a","b"]'
    assert first["detail"].value == '{"k":1}'
    assert first["enum"].value == "good"
    assert first["long"].value == "x" * EXCEL_MAX_STRING  # cut at Excel's limit
    assert first["nothing"].value is None
    assert first[OVERFLOW_COLUMN].value is None
    second = [cell.value for cell in sheet[3]]
    assert second[0] == "b@x.io"
    assert second[1:] == [None] * (len(header) - 1)
    # None is no cell at all, not an empty text.
    xml = zipfile.ZipFile(path).read("xl/worksheets/sheet2.xml").decode()
    assert re.findall(r'<c r="([A-Z]+)3"', xml) == ["A"]


@pytest.mark.parametrize("mixed", [False, True], ids=["rustpy", "xlsxwriter"])
def test_sheets_continue_past_the_row_limit_with_the_same_header(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mixed: bool
) -> None:
    rows: list[tuple[str, dict[str, Any] | None]] = [(f"u{i}@x.io", RESULT) for i in range(11)]
    if mixed:
        rows.insert(4, (HOSTILE, RESULT))
    path = tmp_path / "r.xlsx"
    assert _write(path, rows, caplog, max_rows_per_sheet=5) == ("xlsxwriter" if mixed else "rustpy")
    book = openpyxl.load_workbook(path)
    names = ["Summary", "Results", "Results 2", "Results 3"]
    assert book.sheetnames == names
    values = []
    for name in names[1:]:
        sheet = book[name]
        header = sheet[1]
        assert [c.value for c in header] == [*documented_columns("email"), *_extras(), "extra"]
        assert all(cell.font.b for cell in header)
        assert sheet.freeze_panes == "A2"
        values += [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert values == [value for value, _ in rows]  # one row each, in order, none lost
    assert [book[n].max_row - 1 for n in names[1:]] == ([4, 4, 4] if mixed else [4, 4, 3])


def _extras() -> list[str]:
    return list(xlsx_export.KNOWN_EXTRA_COLUMNS["email"])


@pytest.mark.parametrize("mixed", [False, True], ids=["rustpy", "xlsxwriter"])
def test_the_summary_is_two_columns_of_pairs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mixed: bool
) -> None:
    summary = [
        ("Batch", "Batch"),
        ("Type", "email"),
        ("valid_email", 3),
        ("Name", "-x"),
        ("T", 0.5),
    ]
    rows: list[tuple[str, dict[str, Any] | None]] = [("a@x.io", RESULT)]
    if mixed:
        _mixed(rows)
    path = tmp_path / "r.xlsx"
    assert _write(path, rows, caplog, summary=summary) == ("xlsxwriter" if mixed else "rustpy")
    sheet = openpyxl.load_workbook(path)["Summary"]
    assert [tuple(r) for r in sheet.iter_rows(values_only=True)] == summary
    assert sheet["B4"].quotePrefix
    assert sheet["B4"].data_type == "s"
    assert [sheet[ref].quotePrefix for ref in ("B1", "B2", "B3", "B5")] == [False] * 4
    assert sheet["B3"].data_type == "n"
    assert round(sheet.column_dimensions["A"].width) == 37  # 36 characters, Excel's padding
    assert round(sheet.column_dimensions["B"].width) == 41


def test_a_formula_like_first_summary_value_is_flagged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "r.xlsx"
    assert _write(path, [], caplog, summary=[("Batch", "=cmd")]) == "rustpy"
    book = openpyxl.load_workbook(path)
    cell = book["Summary"]["B1"]
    assert (cell.value, cell.data_type) == ("=cmd", "s")
    assert cell.quotePrefix
    assert book["Summary"].max_row == 1
    results = book["Results"]
    assert results.max_row == 1  # the header, no record
    assert results["A1"].value == "email"


def test_an_empty_summary_is_an_empty_sheet(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "r.xlsx"
    _write(path, [("a@x.io", RESULT)], caplog)
    sheet = openpyxl.load_workbook(path)["Summary"]
    assert list(sheet.iter_rows(values_only=True)) in ([], [(None,)])


def _peak_python_memory(path: Path, n: int) -> tuple[int, int]:
    """Rows read and the peak of what Python held while ``n`` rows were written."""
    read = 0

    def rows() -> Iterator[tuple[str, dict[str, Any]]]:
        nonlocal read
        for i in range(n):
            read += 1
            yield f"user{i}@example{i % 100}.com", {**RESULT, "smtp_reply": f"250 ok {i}"}

    tracemalloc.start()
    try:
        assert write_xlsx(path, "email", [], rows()) == n
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return read, peak


def test_rows_are_streamed_not_held(tmp_path: Path) -> None:
    """The rows are read once, as they come, and what Python holds does not grow with them
    (18,000 more rows held would be ~18 MB more)."""
    small = _peak_python_memory(tmp_path / "small.xlsx", 2_000)
    large = _peak_python_memory(tmp_path / "large.xlsx", 20_000)
    assert (small[0], large[0]) == (2_000, 20_000)
    assert large[1] - small[1] < 2 * 2**20, (small, large)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["large.xlsx", "small.xlsx"]


def test_an_error_of_the_rows_stops_the_export(tmp_path: Path) -> None:
    def rows() -> Iterator[tuple[str, dict[str, Any]]]:
        yield "a@x.io", RESULT
        raise ConnectionError("database gone")

    with pytest.raises(ConnectionError, match="database gone"):
        write_xlsx(tmp_path / "r.xlsx", "email", [], rows())


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_is_an_os_error_with_its_errno(tmp_path: Path) -> None:
    """rustpy reports I/O errors as text; the writer gives them their errno back."""
    path = tmp_path / "r.xlsx"
    path.symlink_to("/dev/full")
    with pytest.raises(OSError, match="No space left") as raised:
        write_xlsx(path, "email", [("Batch", "b")], [("a@x.io", RESULT)])
    assert raised.value.errno == errno.ENOSPC
    assert is_disk_full(raised.value)


def test_a_sheet_needs_room_for_a_row() -> None:
    with pytest.raises(ValueError, match="at least one row"):
        write_xlsx(Path("unused.xlsx"), "email", [], [], max_rows_per_sheet=1)
