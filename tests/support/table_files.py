"""Real table files as growth teams upload them (HubSpot, Mailchimp, Excel exports), with the
counts a batch of each must show: shared by the API, dashboard, CLI and SDK tests of table
input (#16). Every file is built here from :data:`ROWS`-like lists, so a test can compare
what comes back with what went in."""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import xlsxwriter

ODS_MIMETYPE = "application/vnd.oasis.opendocument.spreadsheet"


@dataclass(frozen=True)
class TableFile:
    name: str  # the upload's file name
    content: bytes
    header: list[str]
    rows: list[list[str]]  # the data rows as the file holds them (cell texts)
    valid: int
    wrong: int
    duplicate: int
    record_type: str = "email"


def _csv(
    rows: list[list[str]], *, delimiter: str = ",", bom: bool = False, crlf: bool = True
) -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n" if crlf else "\n").writerows(rows)
    return (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode("utf-8")


HUBSPOT_HEADER = ["First Name", "Last Name", "Email", "Company"]
HUBSPOT_ROWS = [
    ["Jane", "Doe", "jane@example.com", "Acme, Inc."],
    ["Multi\r\nLine", "Smith", "bob@example.org", 'He said "hi"'],
    ["Ann", "Lee", "not-an-email", "Globex"],
    ["Jim", "Bo", "jane@example.com", "Initech"],
    ["No", "Mail", "", "Nowhere; Ltd"],
    ["Zoë", "Ünal", " zoe@example.net ", 'Café, "Le" Bistro'],
]


def hubspot_csv() -> TableFile:
    """BOM, CRLF, quoted fields with commas, quotes and a line break; a blank email."""
    return TableFile(
        "hubspot-contacts.csv",
        _csv([HUBSPOT_HEADER, *HUBSPOT_ROWS], bom=True),
        HUBSPOT_HEADER,
        HUBSPOT_ROWS,
        valid=3,
        wrong=1,
        duplicate=1,
    )


MAILCHIMP_HEADER = [
    "Email Address",
    "First Name",
    "Last Name",
    "Address",
    "Phone Number",
    "Birthday",
    "MEMBER_RATING",
    "OPTIN_TIME",
    "TAGS",
]
MAILCHIMP_ROWS = [
    [
        "ann@example.com",
        "Ann",
        "A",
        "1 Main St, Springfield, IL 62701",
        "+1 555 0100",
        "01/02",
        "2",
        "2024-01-01 10:00:00",
        '"vip"',
    ],
    ["ben@example.org", "Ben", "B", "2 Elm St\nApt 3", "", "", "3", "2024-02-01 10:00:00", ""],
    ["ben@example.org", "Ben", "B", "", "", "", "1", "", ""],
    ["broken@", "C", "C", "", "", "", "1", "", ""],
]


def mailchimp_csv() -> TableFile:
    return TableFile(
        "mailchimp_subscribed.csv",
        _csv([MAILCHIMP_HEADER, *MAILCHIMP_ROWS], crlf=False),
        MAILCHIMP_HEADER,
        MAILCHIMP_ROWS,
        valid=2,
        wrong=1,
        duplicate=1,
    )


SEMICOLON_HEADER = ["Name", "E-mail", "City"]
SEMICOLON_ROWS = [
    ["Müller", "mueller@example.de", "Köln"],
    ["Dupont", "dupont@example.fr", "Paris; 75001"],
    ["Rossi", "rossi@example.it", "Roma"],
]


def semicolon_csv() -> TableFile:
    """Excel in a comma-decimal locale: semicolons, BOM, CRLF."""
    return TableFile(
        "kontakte.csv",
        _csv([SEMICOLON_HEADER, *SEMICOLON_ROWS], delimiter=";", bom=True),
        SEMICOLON_HEADER,
        SEMICOLON_ROWS,
        valid=3,
        wrong=0,
        duplicate=0,
    )


TSV_HEADER = ["id", "email_address", "note"]
TSV_ROWS = [
    ["1", "a@example.com", "first, with comma"],
    ["2", "b@example.com", ""],
    ["3", "bad", "x"],
]


def tsv() -> TableFile:
    return TableFile(
        "export.tsv",
        _csv([TSV_HEADER, *TSV_ROWS], delimiter="\t", crlf=False),
        TSV_HEADER,
        TSV_ROWS,
        valid=2,
        wrong=1,
        duplicate=0,
    )


def one_column() -> TableFile:
    """A one-column list whose first line is ``email`` (refused without the extension)."""
    rows = [["x@example.com"], ["y@example.com"], ["x@example.com"]]
    return TableFile(
        "list.csv",
        b"email\nx@example.com\ny@example.com\nx@example.com\n",
        ["email"],
        rows,
        2,
        0,
        1,
    )


XLSX_HEADER = ["Name", "Email", "Phone", "Score"]
# The phone and the score as numbers: they must read back as digits, not 15550100.0.
XLSX_ROWS = [
    ["Ada", "ada@example.com", 12025550143, 10],
    ["Bob", "bob@example.com", 12025550188, 2.5],
    ["Cy", "", 12025550199, 3],
    ["Di", "di-at-example.com", "", 1],
]
XLSX_TEXT_ROWS = [
    ["Ada", "ada@example.com", "12025550143", "10"],
    ["Bob", "bob@example.com", "12025550188", "2.5"],
    ["Cy", "", "12025550199", "3"],
    ["Di", "di-at-example.com", "", "1"],
]


def xlsx(tmp: Path) -> TableFile:
    """An XLSX with a header row, written by XlsxWriter."""
    path = tmp / "contacts.xlsx"
    workbook = xlsxwriter.Workbook(str(path))
    sheet = workbook.add_worksheet("Contacts")
    sheet.write_row(0, 0, XLSX_HEADER)
    for i, row in enumerate(XLSX_ROWS, start=1):
        for j, value in enumerate(row):
            if value != "":
                sheet.write(i, j, value)
    workbook.close()
    return TableFile("contacts.xlsx", path.read_bytes(), XLSX_HEADER, XLSX_TEXT_ROWS, 2, 1, 0)


def xlsx_phones(tmp: Path) -> TableFile:
    """The same workbook as a phone batch: the Phone column, numbers stored as numbers."""
    base = xlsx(tmp)
    return TableFile(base.name, base.content, base.header, base.rows, 3, 0, 0, "phone")


def ods() -> TableFile:
    """A minimal OpenDocument spreadsheet (what LibreOffice writes, reduced to what a reader
    needs): the mimetype entry first and stored, then content.xml."""
    header = ["Email", "Name"]
    rows = [["odt@example.com", "Olga"], ["", "Nobody"], ["ods@example.org", "Otto"]]

    def cell(text: str) -> str:
        if not text:
            return "<table:table-cell/>"
        return (
            '<table:table-cell office:value-type="string">'
            f"<text:p>{escape(text)}</text:p></table:table-cell>"
        )

    body = "".join(
        "<table:table-row>" + "".join(cell(c) for c in row) + "</table:table-row>"
        for row in [header, *rows]
    )
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        f'<office:body><office:spreadsheet><table:table table:name="Sheet1">{body}'
        "</table:table></office:spreadsheet></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
        'manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/" '
        f'manifest:media-type="{ODS_MIMETYPE}"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), ODS_MIMETYPE)
        archive.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
        archive.writestr("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED)
    return TableFile("contacts.ods", out.getvalue(), header, rows, 2, 0, 0)


def zip_bomb() -> bytes:
    """An 'XLSX' whose sheet inflates a thousandfold (20 MB of zeros)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (20 * 1024 * 1024))
    return out.getvalue()


def far_cells_xlsx(tmp: Path) -> bytes:
    """A 5 KB XLSX with a cell in A1 and one in XFD1048576: a reader that builds the dense
    grid asks for 512 GB (python-calamine aborts its process on it)."""
    path = tmp / "far.xlsx"
    workbook = xlsxwriter.Workbook(str(path))
    sheet = workbook.add_worksheet()
    sheet.write(0, 0, "Email")
    sheet.write(1, 0, "a@example.com")
    sheet.write(1048575, 16383, "x")
    workbook.close()
    return path.read_bytes()


ODS_NAMESPACES = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"'
)


def ods_document(tables: str, *, prolog: str = "") -> bytes:
    """An ODS whose ``office:spreadsheet`` holds ``tables`` (``<table:table>`` elements as
    XML text): for the streaming reader's tests, which need what LibreOffice writes
    (repeated rows and cells, typed values, spans) without LibreOffice."""
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?>{prolog}'
        f'<office:document-content {ODS_NAMESPACES} office:version="1.2">'
        f"<office:body><office:spreadsheet>{tables}</office:spreadsheet></office:body>"
        "</office:document-content>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), ODS_MIMETYPE)
        archive.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
        archive.writestr("META-INF/manifest.xml", _ODS_MANIFEST, zipfile.ZIP_DEFLATED)
    return out.getvalue()


_ODS_MANIFEST = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
    'manifest:version="1.2">'
    f'<manifest:file-entry manifest:full-path="/" manifest:media-type="{ODS_MIMETYPE}"/>'
    '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
    "</manifest:manifest>"
)
