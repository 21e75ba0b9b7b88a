"""Hostile and odd workbooks for the streaming readers: bounds (Excel's 16,384 columns and
1,048,576 rows, repeat counts), XML tricks (entity expansion, malformed XML), shared strings
kept on disk, memory that does not grow with the sheet, and the ODS texts calamine lost."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from pathlib import Path

import pytest
import xlsxwriter

from apexverify.batches.sources import TableRequest, convert, ods_stream, xlsx_stream
from apexverify.batches.sources.read import workbook_rows
from apexverify.batches.sources.shared_strings import SharedStrings
from apexverify.errors import ParseError
from tests.batches.test_sources_workbook_oracle import MAIN, _xlsx_package
from tests.support import table_files


def _sheet(rows: str, prolog: str = "") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>{prolog}<worksheet xmlns="{MAIN}">'
        f"<sheetData>{rows}</sheetData></worksheet>"
    )


def _xlsx(tmp: Path, rows: str, prolog: str = "", strings: str | None = None) -> str:
    path = tmp / "book.xlsx"
    path.write_bytes(_xlsx_package(_sheet(rows, prolog), strings=strings))
    return str(path)


def _ods(tmp: Path, rows: str) -> str:
    path = tmp / "book.ods"
    path.write_bytes(table_files.ods_document(f'<table:table table:name="S">{rows}</table:table>'))
    return str(path)


def _string_cell(text: str, repeat: int = 1) -> str:
    attr = f' table:number-columns-repeated="{repeat}"' if repeat > 1 else ""
    return (
        f'<table:table-cell office:value-type="string"{attr}><text:p>{text}</text:p>'
        "</table:table-cell>"
    )


def test_the_far_cell_workbook_reads_in_bounded_memory(tmp_path: Path) -> None:
    """A1 and XFD1048576 in a 5 KB file: calamine asked for a 512 GB grid and aborted; the
    stream returns the million (empty) rows between them one at a time."""
    path = tmp_path / "far.xlsx"
    path.write_bytes(table_files.far_cells_xlsx(tmp_path))
    count, last = 0, []
    tracemalloc.start()
    try:
        for row in xlsx_stream.sheet_rows(str(path)):
            count += 1
            last = row
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 1_048_576
    assert len(last) == 16_384
    assert last[-1] == "x"
    assert peak < 8 * 1024 * 1024
    with pytest.raises(ParseError, match="Data row 1048575 has more than 1000 columns"):
        convert(path, tmp_path / "derived", TableRequest("auto"), "email", "far.xlsx")


def test_past_excels_bounds_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="past column XFD"):
        list(xlsx_stream.sheet_rows(_xlsx(tmp_path, '<row r="1"><c r="XFE1"><v>1</v></c></row>')))
    with pytest.raises(ParseError, match="row numbered 1048577"):
        list(xlsx_stream.sheet_rows(_xlsx(tmp_path, '<row r="1048577"><c><v>1</v></c></row>')))
    with pytest.raises(ParseError, match="cell named"):
        list(xlsx_stream.sheet_rows(_xlsx(tmp_path, '<row><c r="1A"><v>1</v></c></row>')))
    with pytest.raises(ParseError, match="row numbered 'x'"):
        list(xlsx_stream.sheet_rows(_xlsx(tmp_path, '<row r="x"><c><v>1</v></c></row>')))
    wide = _ods(tmp_path, f"<table:table-row>{_string_cell('a', 20_000)}</table:table-row>")
    with pytest.raises(ParseError, match="past column 16384"):
        list(ods_stream.sheet_rows(wide))
    many = _ods(
        tmp_path,
        '<table:table-row table:number-rows-repeated="1048577">'
        f"{_string_cell('a')}</table:table-row>",
    )
    with pytest.raises(ParseError, match="past row 1048576"):
        list(ods_stream.sheet_rows(many))


def test_absurd_ods_repeats(tmp_path: Path) -> None:
    """Empty repeats are never expanded, whatever their count; non-empty ones are, up to a
    bound on the cells they add."""
    rows = (
        '<table:table-row table:number-rows-repeated="999999999">'
        '<table:table-cell table:number-columns-repeated="999999999"/></table:table-row>'
        f"<table:table-row>{_string_cell('a')}</table:table-row>"
        '<table:table-row table:number-rows-repeated="999999999">'
        '<table:table-cell table:number-columns-repeated="999999999"/></table:table-row>'
    )
    with pytest.raises(ParseError, match="past row 1048576"):  # the empty rows count
        list(ods_stream.sheet_rows(_ods(tmp_path, rows)))
    trailing = _ods(
        tmp_path,
        f"<table:table-row>{_string_cell('a')}"
        '<table:table-cell table:number-columns-repeated="999999999"/></table:table-row>'
        '<table:table-row table:number-rows-repeated="999999999">'
        '<table:table-cell table:number-columns-repeated="999999999"/></table:table-row>',
    )
    assert list(ods_stream.sheet_rows(trailing)) == [["a"]]
    bomb = _ods(
        tmp_path,
        '<table:table-row table:number-rows-repeated="1000000">'
        f"{_string_cell('a', 1000)}</table:table-row>",
    )
    with pytest.raises(ParseError, match="repeats rows into more than 20000000 cells"):
        list(ods_stream.sheet_rows(bomb))
    with pytest.raises(ParseError, match="repeat count 'x'"):
        list(
            ods_stream.sheet_rows(
                _ods(tmp_path, '<table:table-row table:number-rows-repeated="x"/>')
            )
        )


BILLION_LAUGHS = (
    '<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i + 1} "{f"&lol{i};" * 10 if i else "&lol;" * 10}">' for i in range(9))
    + "]>"
)


def test_entity_tricks_and_malformed_xml_are_parse_errors(tmp_path: Path) -> None:
    laughs = _xlsx(tmp_path, '<row><c t="str"><v>&lol9;</v></c></row>', BILLION_LAUGHS)
    with pytest.raises(ParseError, match="document type declaration"):
        list(xlsx_stream.sheet_rows(laughs))
    external = _xlsx(
        tmp_path,
        '<row><c t="str"><v>&x;</v></c></row>',
        '<!DOCTYPE w [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    )
    with pytest.raises(ParseError, match="document type declaration"):
        list(xlsx_stream.sheet_rows(external))
    with pytest.raises(ParseError, match=r"sheet \(xl/worksheets/data.xml\) is not well-formed"):
        list(xlsx_stream.sheet_rows(_xlsx(tmp_path, "<row><c><v>1</v></row>")))
    strings = f'<sst xmlns="{MAIN}"><si><t>a</si></sst>'
    with pytest.raises(ParseError, match=r"shared strings .* not well-formed"):
        list(
            xlsx_stream.sheet_rows(_xlsx(tmp_path, '<row><c t="s"><v>0</v></c></row>', "", strings))
        )
    ods = tmp_path / "laughs.ods"
    ods.write_bytes(
        table_files.ods_document(
            f'<table:table table:name="S"><table:table-row>{_string_cell("&lol9;")}'
            "</table:table-row></table:table>",
            prolog=BILLION_LAUGHS,
        )
    )
    with pytest.raises(ParseError, match="document type declaration"):
        list(ods_stream.sheet_rows(str(ods)))


def test_the_child_passes_the_readers_message_on(tmp_path: Path) -> None:
    path = Path(_xlsx(tmp_path, "<row><c><v>1</v></row>"))
    with pytest.raises(ParseError) as refused:
        list(workbook_rows(path, "xlsx"))
    assert refused.value.message.startswith("The workbook's sheet (xl/worksheets/data.xml)")
    assert "not well-formed" in refused.value.message


def test_shared_strings_live_in_files(tmp_path: Path) -> None:
    body = "".join(f"<si><t>string {i} é</t></si>" for i in range(40_000))
    strings = SharedStrings()
    try:
        strings.load(io.BytesIO(f'<sst xmlns="{MAIN}">{body}<si/></sst>'.encode()))
        assert strings.count == 40_001
        assert strings[0] == "string 0 é"
        assert strings[39_999] == "string 39999 é"
        assert strings[40_000] == ""
        with pytest.raises(ParseError, match="shared string 40001, but the workbook has 40001"):
            strings[40_001]
    finally:
        strings.close()
    path = _xlsx(tmp_path, '<row><c t="s"><v>3</v></c></row>', "", f'<sst xmlns="{MAIN}"/>')
    with pytest.raises(ParseError, match="shared string 3, but the workbook has 0"):
        list(xlsx_stream.sheet_rows(path))


def _distinct_strings_book(path: Path, rows: int) -> None:
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet()
    for i in range(rows):
        sheet.write_row(i, 0, [f"user{i}@example{i % 97}.com", f"Name {i}", i])
    book.close()


def _peak_while_reading(path: Path) -> int:
    tracemalloc.start()
    try:
        for _ in xlsx_stream.sheet_rows(str(path)):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_sheet(tmp_path: Path) -> None:
    """Four times the rows (and the distinct shared strings: 45,000 more) and the reader's
    peak of Python allocations stays the same (measured: 2.09 against 2.21 MB): one chunk
    of XML and its rows. Both sheets are larger than a chunk, so both reach that peak.
    (calamine's grid grew with the sheet: about 0.5 GB for a million rows.)"""
    small, large = tmp_path / "small.xlsx", tmp_path / "large.xlsx"
    _distinct_strings_book(small, 15_000)
    _distinct_strings_book(large, 60_000)
    small_peak, large_peak = _peak_while_reading(small), _peak_while_reading(large)
    assert large_peak < small_peak * 1.25, (small_peak, large_peak)


def test_long_cells_are_refused(tmp_path: Path) -> None:
    long_text = "x" * 140_000
    path = _xlsx(tmp_path, f'<row><c t="inlineStr"><is><t>{long_text}</t></is></c></row>')
    with pytest.raises(ParseError, match="longer than 131072 characters"):
        list(xlsx_stream.sheet_rows(path))
    path = _xlsx(
        tmp_path,
        '<row><c t="s"><v>0</v></c></row>',
        "",
        f'<sst xmlns="{MAIN}"><si><t>{long_text}</t></si></sst>',
    )
    with pytest.raises(ParseError, match="longer than 131072 characters"):
        list(xlsx_stream.sheet_rows(path))
    spaces = _ods(
        tmp_path,
        '<table:table-row><table:table-cell office:value-type="string"><text:p>'
        '<text:s text:c="999999999"/></text:p></table:table-cell></table:table-row>',
    )
    with pytest.raises(ParseError, match="longer than 131072 characters"):
        list(ods_stream.sheet_rows(spaces))


def test_ods_tabs_and_line_breaks_are_kept(tmp_path: Path) -> None:
    """calamine dropped them (``John<text:line-break/>Smith`` read ``JohnSmith``)."""
    path = _ods(
        tmp_path,
        '<table:table-row><table:table-cell office:value-type="string"><text:p>John'
        "<text:line-break/>Smith<text:tab/>Ltd</text:p></table:table-cell></table:table-row>",
    )
    assert list(ods_stream.sheet_rows(path)) == [["John\nSmith\tLtd"]]


def test_missing_parts_are_parse_errors(tmp_path: Path) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("xl/workbook.xml", f'<workbook xmlns="{MAIN}"><sheets/></workbook>')
    path = tmp_path / "nosheet.xlsx"
    path.write_bytes(out.getvalue())
    with pytest.raises(ParseError, match="has no sheet"):
        list(xlsx_stream.sheet_rows(str(path)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(
            "xl/workbook.xml",
            f'<workbook xmlns="{MAIN}" xmlns:r="http://schemas.openxmlformats.org/'
            'officeDocument/2006/relationships"><sheets><sheet name="A" r:id="rId9"/>'
            "</sheets></workbook>",
        )
    path.write_bytes(out.getvalue())
    with pytest.raises(ParseError, match="does not say where its sheet 'A' is"):
        list(xlsx_stream.sheet_rows(str(path)))
    empty_ods = tmp_path / "empty.ods"
    empty_ods.write_bytes(table_files.ods_document(""))
    with pytest.raises(ParseError, match="has no sheet"):
        list(ods_stream.sheet_rows(str(empty_ods)))
