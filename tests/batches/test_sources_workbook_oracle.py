"""The streaming workbook readers (``xlsx_stream``, ``ods_stream``) against python-calamine,
the reader they replaced: for a corpus of workbooks written by XlsxWriter, rustpy-xlsxwriter,
openpyxl and by hand (ODS, XLSX parts renamed or prefixed), the rows must be the texts that
calamine's values gave through ``cell_text``.

The two known differences are normalised here, not hidden: calamine's columns start at the
leftmost used column (ours at column A, so calamine's rows are shifted right by its start
column), and its rows are a dense grid (trailing empty cells and rows are dropped from both
sides before comparing). ODS ``text:tab`` / ``text:line-break`` (dropped by calamine) are
checked on their own in test_sources_workbook_hostile.py.
"""

# The fixtures are XML one element a line, easier to read whole than wrapped.
# ruff: noqa: E501

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest
import python_calamine
import rustpy_xlsxwriter
import xlsxwriter

from apexverify.batches.sources import ods_stream, xlsx_stream
from apexverify.batches.sources.cells import cell_text
from apexverify.batches.sources.read import workbook_rows
from tests.support import table_files


def _trim(rows: list[list[str]]) -> list[list[str]]:
    trimmed = []
    for row in rows:
        cells = list(row)
        while cells and cells[-1] == "":
            cells.pop()
        trimmed.append(cells)
    while trimmed and not trimmed[-1]:
        trimmed.pop()
    return trimmed


def calamine_rows(path: Path) -> tuple[str, list[list[str]]]:
    with python_calamine.CalamineWorkbook.from_path(str(path)) as book:
        sheet = book.get_sheet_by_index(0)
        shift = [""] * sheet.start[1] if sheet.start else []
        rows = [shift + [cell_text(value) for value in row] for row in sheet.iter_rows()]
        return sheet.name, _trim(rows)


def streamed_rows(path: Path, fmt: str) -> tuple[str, list[list[str]]]:
    reader = ods_stream.sheet_rows if fmt == "ods" else xlsx_stream.sheet_rows
    sheet: list[str] = []
    rows = list(reader(str(path), sheet))
    return sheet[0], _trim(rows)


# --- XLSX written by XlsxWriter: shared strings, styles, formulas --------------------------

DATE_FORMATS = [
    "yyyy-mm-dd",
    "dd/mm/yyyy hh:mm:ss",
    "m/d/yy h:mm AM/PM",
    "hh:mm",
    "[h]:mm:ss",
    "[mm]:ss",
    "mmm-yy",
    '"Date: "yyyy',
    "0.00%",
    "#,##0.00",
    '0"d"',
    "\\y0",
    "General",
    "[Red]0.00;[Blue]-0.00",
    "[$-409]mmmm d, yyyy;@",
    "[>=100][Magenta]0.00",
    "a/p",
]
SERIALS = [0, 0.25, 0.999999999, 1, 1.5, 59, 60, 61, 1462, 44197.123456789, 45000.99999999]
SERIALS += [-1, -0.25, 2958465, 2958465.99999, 2958466, 12025550143, 2.5, 1e20]
BUILTIN_IDS = [1, 2, 9, 10, 14, 15, 16, 17, 18, 19, 20, 21, 22, 45, 46, 47, 49]
# An elapsed-time format on a serial past 999,999,999 days made python-calamine raise
# OverflowError (the whole workbook unreadable); the streaming reader gives the number.
DURATIONS = {"[h]:mm:ss", "[mm]:ss", 46}
HUGE = {12025550143, 1e20}


def xlsxwriter_book(path: Path, *, date_1904: bool = False) -> None:
    book = xlsxwriter.Workbook(str(path), {"date_1904": date_1904, "strings_to_numbers": False})
    sheet = book.add_worksheet("Data Sheet")
    sheet.write_row(0, 0, ["Email", "Name", "Phone", "Note"])
    sheet.write_row(1, 0, ["ann@example.com", "Ann", 12025550143, "a, b"])
    sheet.write_string(2, 0, "zoë@exämple.org")
    sheet.write_number(2, 2, 2.5)
    sheet.write_string(2, 5, "sparse")  # skips E
    sheet.write_string(6, 1, "after a gap")  # rows 4..6 empty
    sheet.write_boolean(7, 0, True)
    sheet.write_boolean(7, 1, False)
    sheet.write_formula(7, 2, "=1+1", None, 2)
    sheet.write_formula(7, 3, '="a"&"b"', None, "ab")
    sheet.write_formula(7, 4, "=1/0", None, "#DIV/0!")
    sheet.write_formula(7, 5, "=NA()", None, "#N/A")
    bold = book.add_format({"bold": True})
    sheet.write_rich_string(8, 0, "plain ", bold, "bold", " end")
    sheet.write_blank(8, 3, None, bold)  # a styled empty cell is no cell
    sheet.write_string(9, 0, "  spaced  ")
    sheet.write_string(9, 1, "line\nbreak")
    sheet.write_string(9, 2, "")
    sheet.write_string(9, 3, "<&>\"'")
    sheet.write_string(9, 4, "\U0001f600 emoji")
    row = 10
    for code in DATE_FORMATS:
        style = book.add_format({"num_format": code})
        for column, value in enumerate(SERIALS):
            if not (code in DURATIONS and value in HUGE):
                sheet.write_number(row, column, value, style)
        row += 1
    for format_id in BUILTIN_IDS:
        style = book.add_format({"num_format": format_id})
        for column, value in enumerate(SERIALS):
            if not (format_id in DURATIONS and value in HUGE):
                sheet.write_number(row, column, value, style)
        row += 1
    sheet.write_datetime(
        row,
        0,
        dt.datetime(2024, 1, 2, 3, 4, 5),
        book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"}),
    )
    sheet.write_datetime(
        row, 1, dt.date(2024, 2, 29), book.add_format({"num_format": "d mmm yyyy"})
    )
    sheet.write_datetime(row, 2, dt.time(13, 14, 15), book.add_format({"num_format": "hh:mm:ss"}))
    sheet.write_string(row + 40, 0, "far below")
    book.add_worksheet("Second").write_string(0, 0, "not read")
    book.close()


def xlsxwriter_offset(path: Path) -> None:
    """A sheet whose cells start at C4 (calamine's column 1 is C; ours is A)."""
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet()
    sheet.write_row(3, 2, ["Email", "Name"])
    sheet.write_row(4, 2, ["a@example.com", "A"])
    sheet.write_row(5, 3, ["only B"])
    book.close()


def rustpy_book(path: Path) -> None:
    """Inline strings (``t="inlineStr"``) and numbers written as ``123.0``."""
    records = [
        {"Email": f"user{i}@example.com", "Phone": 15550100000 + i, "Score": i / 4, "Note": "x" * i}
        for i in range(300)
    ]
    rustpy_xlsxwriter.write_worksheet(records, str(path), sheet_name="Contacts")


def openpyxl_book(path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Py"
    sheet.append(["Email", "When", "Amount", "Flag"])
    sheet.append(["a@example.com", dt.datetime(2023, 5, 6, 7, 8, 9), 1234.5, True])
    sheet.append(["b@example.com", dt.date(1999, 12, 31), -3, False])
    sheet.append([None, dt.time(23, 59, 59), 0.1, None])
    sheet.cell(row=9, column=7, value="corner")
    book.save(path)


def renamed_sheet_book(path: Path) -> None:
    """The first sheet's part is ``xl/worksheets/sheet2.xml`` (and the second's sheet1):
    the reader follows workbook.xml and its rels, not the file names."""
    plain = path.with_suffix(".plain.xlsx")
    book = xlsxwriter.Workbook(str(plain))
    book.add_worksheet("First").write_row(0, 0, ["Email", "first@example.com"])
    book.add_worksheet("Other").write_row(0, 0, ["Email", "other@example.com"])
    book.close()
    swap = {"xl/worksheets/sheet1.xml": "xl/worksheets/sheet2.xml"}
    swap.update({v: k for k, v in swap.items()})
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "xl/_rels/workbook.xml.rels":
                data = (
                    data.replace(b"sheet1.xml", b"SWAP").replace(b"sheet2.xml", b"sheet1.xml")
                ).replace(b"SWAP", b"sheet2.xml")
            target.writestr(swap.get(info.filename, info.filename), data, zipfile.ZIP_DEFLATED)


def _xlsx_package(sheet_xml: str, *, strings: str | None = None) -> bytes:
    """A minimal XLSX around a hand-written sheet (and shared strings)."""
    rels = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships/worksheet" Target="/xl/worksheets/data.xml"/>'
        + (
            '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/'
            '2006/relationships/sharedStrings" Target="sharedStrings.xml"/>'
            if strings is not None
            else ""
        )
        + "</Relationships>"
    )
    workbook = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<x:workbook xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:rel="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<x:sheets><x:sheet name="Hand" sheetId="7" rel:id="rId1"/></x:sheets></x:workbook>'
    )
    types = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/data.xml" ContentType="application/vnd.'
        'openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        + (
            '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-'
            'officedocument.spreadsheetml.sharedStrings+xml"/>'
            if strings is not None
            else ""
        )
        + "</Types>"
    )
    root_rels = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>'
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", types)
        archive.writestr("_rels/.rels", root_rels)
        archive.writestr("xl/workbook.xml", workbook)
        archive.writestr("xl/_rels/workbook.xml.rels", rels)
        archive.writestr("xl/worksheets/data.xml", sheet_xml)
        if strings is not None:
            archive.writestr("xl/sharedStrings.xml", strings)
    return out.getvalue()


MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def hand_xlsx(path: Path) -> None:
    """Prefixed elements (``x:``), cells and rows without ``r``, out-of-order cells, rich
    shared strings with phonetic runs, inline rich text, whitespace between elements."""
    strings = (
        f'<?xml version="1.0" encoding="UTF-8"?><x:sst xmlns:x="{MAIN}" count="4" uniqueCount="4">'
        "<x:si><x:t>Email</x:t></x:si>"
        '<x:si><x:r><x:t xml:space="preserve">rich </x:t></x:r><x:r><x:rPr><x:b/></x:rPr><x:t xml:space="preserve">'
        'text </x:t></x:r><x:rPh sb="0" eb="1"><x:t>PHONETIC</x:t></x:rPh></x:si>'
        "<x:si><x:t/></x:si>"
        "<x:si><x:t>a&amp;b&lt;c&gt;</x:t></x:si>"
        "</x:sst>"
    )
    sheet = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<x:worksheet xmlns:x="{MAIN}">\n'
        "<x:sheetData>\n"
        '  <x:row><x:c t="s"><x:v>0</x:v></x:c>\n    <x:c t="s"><x:v>1</x:v></x:c></x:row>\n'
        '  <x:row><x:c t="inlineStr"><x:is><x:r><x:t>in</x:t></x:r><x:r><x:t>line</x:t></x:r>'
        '</x:is></x:c><x:c><x:v> 42 </x:v></x:c><x:c t="n"><x:v>1.25E3</x:v></x:c></x:row>\n'
        '  <x:row r="5"><x:c r="D5" t="s"><x:v>3</x:v></x:c><x:c r="B5" t="str">'
        '<x:f>A1</x:f><x:v>formula text</x:v></x:c><x:c r="C5" t="s"><x:v>2</x:v></x:c>'
        '<x:c r="E5" t="b"><x:v>1</x:v></x:c><x:c r="F5" t="e"><x:v>#REF!</x:v></x:c></x:row>\n'
        '  <x:row r="6"><x:c r="A6"><x:v>-0</x:v></x:c><x:c r="B6"><x:v>9007199254740993</x:v>'
        '</x:c><x:c r="C6"><x:v>0.1</x:v></x:c></x:row>\n'
        "</x:sheetData>\n</x:worksheet>"
    )
    path.write_bytes(_xlsx_package(sheet, strings=strings))


def ods_book(path: Path) -> None:
    cells = [
        '<table:table-cell office:value-type="float" office:value="12025550143"><text:p>x</text:p></table:table-cell>',
        '<table:table-cell office:value-type="float" office:value="2.5"/>',
        '<table:table-cell office:value-type="percentage" office:value="0.25"/>',
        '<table:table-cell office:value-type="currency" office:currency="EUR" office:value="3"/>',
        '<table:table-cell office:value-type="float" office:value="-0"/>',
        '<table:table-cell office:value-type="float" office:value="1e20"/>',
    ]
    typed = [
        '<table:table-cell office:value-type="date" office:date-value="2024-01-02"/>',
        '<table:table-cell office:value-type="date" office:date-value="2024-01-02T03:04:05"/>',
        '<table:table-cell office:value-type="date" office:date-value="2024-01-02T03:04:05.123"/>',
        '<table:table-cell office:value-type="date" office:date-value="not a date"/>',
        '<table:table-cell office:value-type="time" office:time-value="PT12H30M05S"/>',
        '<table:table-cell office:value-type="time" office:time-value="PT1H2M3.5S"/>',
        '<table:table-cell office:value-type="time" office:time-value="PT36H00M00S"/>',
        '<table:table-cell office:value-type="boolean" office:boolean-value="true"/>',
        '<table:table-cell office:value-type="boolean" office:boolean-value="false"/>',
    ]
    texts = [
        '<table:table-cell office:value-type="string"><text:p>a<text:s text:c="3"/>b<text:span text:style-name="T1">c</text:span><text:a>link</text:a><text:s/></text:p><text:p>second</text:p></table:table-cell>',
        '<table:table-cell office:value-type="string" office:string-value="attr"><text:p>shown</text:p></table:table-cell>',
        '<table:table-cell office:value-type="string"><text:p>seen</text:p><office:annotation><text:p>note</text:p></office:annotation></table:table-cell>',
        "<table:table-cell><text:p>untyped</text:p></table:table-cell>",
        '<table:covered-table-cell office:value-type="string"><text:p>covered</text:p></table:covered-table-cell>',
        "<table:covered-table-cell/>",
        '<table:table-cell office:value-type="string"><text:p>&lt;&amp;&gt;</text:p></table:table-cell>',
    ]

    def row(body: str, repeat: int = 1) -> str:
        attr = f' table:number-rows-repeated="{repeat}"' if repeat > 1 else ""
        return f"<table:table-row{attr}>{body}</table:table-row>"

    empty_tail = '<table:table-cell table:number-columns-repeated="16378"/>'
    rows = [
        row(
            '<table:table-cell office:value-type="string"><text:p>Email</text:p></table:table-cell>'
        ),
        row("".join(cells) + empty_tail),
        row("".join(typed)),
        row(
            '<table:table-cell table:number-columns-repeated="2"/>'
            '<table:table-cell office:value-type="string" table:number-columns-repeated="3">'
            "<text:p>rep</text:p></table:table-cell>",
            repeat=3,
        ),
        row('<table:table-cell table:number-columns-repeated="16384"/>', repeat=4),
        row("".join(texts)),
        row('<table:table-cell table:number-columns-repeated="16384"/>', repeat=1048000),
    ]
    header = (
        '<table:table table:name="Kontakte"><table:table-column table:number-columns-repeated="5"/>'
        "<table:table-header-rows>"
        + row(
            '<table:table-cell office:value-type="string"><text:p>Head</text:p></table:table-cell>'
        )
        + "</table:table-header-rows>"
    )
    second = (
        '<table:table table:name="Zwei">'
        + row('<table:table-cell office:value-type="string"><text:p>no</text:p></table:table-cell>')
        + "</table:table>"
    )
    path.write_bytes(table_files.ods_document(header + "".join(rows) + "</table:table>" + second))


CORPUS: dict[str, tuple[str, Callable[[Path], None]]] = {
    "xlsxwriter": ("xlsx", xlsxwriter_book),
    "xlsxwriter_1904": ("xlsx", lambda path: xlsxwriter_book(path, date_1904=True)),
    "xlsxwriter_offset": ("xlsx", xlsxwriter_offset),
    "rustpy_xlsxwriter": ("xlsx", rustpy_book),
    "openpyxl": ("xlsx", openpyxl_book),
    "renamed_sheet_parts": ("xlsx", renamed_sheet_book),
    "hand_prefixed": ("xlsx", hand_xlsx),
    "table_files_xlsx": ("xlsx", lambda path: table_files.xlsx(path.parent)),
    "ods": ("ods", ods_book),
    "table_files_ods": ("ods", lambda path: path.write_bytes(table_files.ods().content)),
}


@pytest.fixture(params=["fast", "callbacks"])
def xlsx_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both XLSX sheet parsers: the strict pattern (with its fallback) and the callbacks."""
    monkeypatch.setattr(xlsx_stream, "FAST", request.param == "fast")
    return str(request.param)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_the_streamed_rows_are_calamines(tmp_path: Path, name: str, xlsx_parser: str) -> None:
    fmt, write = CORPUS[name]
    path = tmp_path / f"{name}.{fmt}"
    write(path)
    if name == "table_files_xlsx":
        path = tmp_path / "contacts.xlsx"
    expected_name, expected = calamine_rows(path)
    sheet, rows = streamed_rows(path, fmt)
    assert sheet == expected_name
    assert len(rows) == len(expected)
    for number, (mine, theirs) in enumerate(zip(rows, expected, strict=True), start=1):
        assert mine == theirs, f"row {number}"
    assert any(any(row) for row in rows)


def test_the_child_process_gives_the_same_rows(tmp_path: Path) -> None:
    for name in ("xlsxwriter", "ods", "hand_prefixed"):
        fmt, write = CORPUS[name]
        path = tmp_path / f"{name}.{fmt}"
        write(path)
        sheet: list[str] = []
        through_child = list(workbook_rows(path, fmt, sheet))
        assert sheet == [streamed_rows(path, fmt)[0]]
        assert through_child == list(
            (ods_stream.sheet_rows if fmt == "ods" else xlsx_stream.sheet_rows)(str(path))
        )


def test_what_the_corpus_holds(tmp_path: Path) -> None:
    """The oracle could agree on nothing; these are the texts the corpus is there for."""
    path = tmp_path / "book.xlsx"
    xlsxwriter_book(path)
    rows = streamed_rows(path, "xlsx")[1]
    assert rows[1] == ["ann@example.com", "Ann", "12025550143", "a, b"]
    assert rows[2] == ["zoë@exämple.org", "", "2.5", "", "", "sparse"]
    assert rows[3:6] == [[], [], []]
    assert rows[6] == ["", "after a gap"]
    assert rows[7] == ["TRUE", "FALSE", "2", "ab"]  # errors are empty
    assert rows[8] == ["plain bold end"]
    assert rows[9] == ["  spaced  ", "line\nbreak", "", "<&>\"'", "\U0001f600 emoji"]
    assert rows[10][:6] == [
        "00:00:00",
        "06:00:00",
        "00:00:00",
        "1900-01-01",
        "1900-01-01T12:00:00",
        "1900-02-28",
    ]
    last = rows[10 + len(DATE_FORMATS) + len(BUILTIN_IDS)]
    assert last == ["2024-01-02T03:04:05", "2024-02-29", "13:14:15"]
    hand = tmp_path / "hand.xlsx"
    hand_xlsx(hand)
    assert streamed_rows(hand, "xlsx")[1] == [
        ["Email", "rich text "],
        ["inline", " 42 ", "1250"],  # not a number to calamine either
        [],
        [],
        ["", "formula text", "", "a&b<c>", "TRUE"],
        ["0", "9007199254740992.0", "0.1"],  # past 2**53: not an integer
    ]


def _no_callbacks(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("the fast path handed over to the callbacks")


@pytest.mark.parametrize("name", ["xlsxwriter", "rustpy_xlsxwriter", "openpyxl"])
def test_the_fast_path_reads_the_common_writers_alone(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fmt, write = CORPUS[name]
    path = tmp_path / f"{name}.{fmt}"
    write(path)
    expected = streamed_rows(path, fmt)
    monkeypatch.setattr(xlsx_stream, "_callback_rows", _no_callbacks)
    assert streamed_rows(path, fmt) == expected


def long_sheet(path: Path, odd_row: str) -> None:
    """9,000 plain rows (several chunks of the fast path), then ``odd_row`` (a form the
    pattern does not take), then 3,000 more plain rows and a gap."""

    def plain(number: int) -> str:
        return (
            f'<row r="{number}"><c r="A{number}" t="inlineStr"><is><t>user{number}@example.com'
            f'</t></is></c><c r="B{number}"><v>{number}.0</v></c>'
            f'<c r="C{number}" t="str"><f>A1</f><v>x &amp; y&#10;z</v></c></row>'
        )

    rows = "".join(plain(n) for n in range(1, 9001)) + odd_row
    rows += "".join(plain(n) for n in range(9002, 12001)) + plain(12005)
    sheet = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="{MAIN}">'
        f'<dimension ref="A1:D12005"/><sheetData>{rows}</sheetData>'
        '<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/>'
        "</worksheet>"
    )
    path.write_bytes(_xlsx_package(sheet))


ODD_ROWS = {
    "rich_inline": '<row r="9001"><c r="A9001" t="inlineStr"><is><r><t>ri</t></r><r><t>ch</t></r></is></c></row>',
    "whitespace": '<row r="9001">\n  <c r="A9001"><v>1</v></c>\n</row>',
    "comment": '<!-- <row r="9001"><c r="A9001"><v>666</v></c></row> --><row r="9001"><c r="D9001"><v>2</v></c></row>',
    "comment_cut": '<!-- x </row> <row r="9001"><c r="A9001"><v>666</v></c></row> y --><row r="9001"><c r="D9001"><v>2</v></c></row>',
    "instruction": '<?pi </row><row r="9001"><c r="A9001"><v>666</v></c></row> ?><row r="9001"><c r="D9001"><v>2</v></c></row>',
    "cdata": '<row r="9001"><c r="A9001" t="str"><v><![CDATA[<b>&]]></v></c></row>',
    "attribute_order": '<row spans="1:3" r="9001"><c t="b" r="B9001"><v>1</v></c></row>',
    "no_refs": "<row><c><v>3</v></c><c/><c><v>4</v></c></row>",
    "carriage_return": '<row r="9001"><c r="A9001" t="str"><v>a\r\nb\rc&#13;d</v></c></row>',
}


@pytest.mark.parametrize("odd", sorted(ODD_ROWS))
def test_the_fast_path_hands_over_mid_sheet(
    tmp_path: Path, odd: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows the pattern does not take, after several chunks it did: the callbacks carry on
    from there, and the rows are the same as the callbacks' alone, and calamine's."""
    path = tmp_path / f"{odd}.xlsx"
    long_sheet(path, ODD_ROWS[odd])
    fast = streamed_rows(path, "xlsx")
    monkeypatch.setattr(xlsx_stream, "FAST", False)
    assert streamed_rows(path, "xlsx") == fast
    if odd == "cdata":  # calamine read a CDATA section as nothing; it is text in XML
        assert fast[1][9000] == ["<b>&"]
    else:
        assert calamine_rows(path)[1] == fast[1]
    assert len(fast[1]) == 12005
    assert fast[1][0] == ["user1@example.com", "1", "x & y\nz"]
    assert fast[1][12001:12004] == [[], [], []]
