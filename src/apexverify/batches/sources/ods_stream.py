"""The first table of an ODS spreadsheet (``content.xml``), row by row, in constant memory.

LibreOffice writes a sheet's unused area as repeats: the cells after the last one of a row
as one empty cell repeated to column 16,384, the rows after the last as one empty row
repeated about a million times. Empty repeats are therefore never expanded: they only move
the column (or row) number, and empty rows after the last non-empty one are dropped. A
non-empty cell or row repeated is expanded, within Excel's bounds (16,384 columns,
1,048,576 rows); past them is a :class:`ParseError`.

Cell texts are those python-calamine gave through ``cells.cell_text`` (the test corpus
compares them): ``office:value`` for float, percentage and currency (``123`` for a whole
number), ISO 8601 for a date, ``HH:MM:SS`` for a time under 24 hours (else the value as
written), ``TRUE``/``FALSE``, and for a string ``office:string-value`` or its paragraphs
joined with line breaks (``text:s`` spaces included, annotations left out). A cell without
``office:value-type`` is empty, as in calamine. Unlike calamine, ``text:tab`` is a tab and
``text:line-break`` a line break (calamine dropped both, gluing the words together), and
columns count from the table's first column.
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

from ...errors import ParseError
from . import xml_stream
from .cells import cell_text
from .xlsx_stream import MAX_COLUMNS, MAX_ROWS

PART = "content (content.xml)"
_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_URIS = {"table": _TABLE, "office": _OFFICE, "text": _TEXT}
_DECLARATION = re.compile(rb'xmlns:([A-Za-z_][\w.\-]*)\s*=\s*["\']([^"\']+)["\']')


@dataclass(frozen=True)
class Names:
    """The element and attribute names as the parser reports them: ``prefix:local`` when
    the root declares the three namespaces (parsed without namespace processing, which
    costs a third of the time), else ``URI local``."""

    table: str
    row: str
    cell: str
    covered: str
    p: str
    space: str
    tab: str
    line_break: str
    annotation: str
    value_type: str
    value: str
    date_value: str
    time_value: str
    boolean_value: str
    string_value: str
    rows_repeated: str
    columns_repeated: str
    table_name: str
    count: str

    @classmethod
    def build(cls, qualify: Callable[[str, str], str]) -> Names:
        def t(local: str) -> str:
            return qualify("table", local)

        def o(local: str) -> str:
            return qualify("office", local)

        def x(local: str) -> str:
            return qualify("text", local)

        return cls(
            t("table"),
            t("table-row"),
            t("table-cell"),
            t("covered-table-cell"),
            x("p"),
            x("s"),
            x("tab"),
            x("line-break"),
            o("annotation"),
            o("value-type"),
            o("value"),
            o("date-value"),
            o("time-value"),
            o("boolean-value"),
            o("string-value"),
            t("number-rows-repeated"),
            t("number-columns-repeated"),
            t("name"),
            x("c"),
        )


def names_for(head: bytes) -> tuple[Names, bool]:
    """The names for a content.xml that starts with ``head``, and whether they need
    namespace processing (a prefix not declared on the root)."""
    root_end = head.find(b">", head.find(b"document-content"))
    declared: dict[str, str] = {}
    for found in _DECLARATION.finditer(head, 0, root_end if root_end > 0 else 0):
        declared[found.group(2).decode("utf-8", "replace")] = found.group(1).decode("ascii")
    prefixes = {short: declared.get(uri) for short, uri in _URIS.items()}
    if all(prefixes.values()):
        return Names.build(lambda ns, local: f"{prefixes[ns]}:{local}"), False
    return Names.build(lambda ns, local: f"{_URIS[ns]} {local}"), True


_NUMBERS = frozenset(("float", "percentage", "currency"))
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?")
_DURATION = re.compile(r"PT(\d+)H(\d+)M(\d+)(?:\.(\d+))?S")

# Repeated non-empty rows are expanded up to this many cells in all: a 5 KB file cannot ask
# for billions of cells (a million rows of 16,384 repeated cells).
MAX_REPEATED_CELLS = 20_000_000

Row = tuple[list[str], int]  # a row's cells (empty: empty rows) and how many times it repeats


def _repeat(attrs: dict[str, str], name: str) -> int:
    text = attrs.get(name)
    if text is None:
        return 1
    try:
        count = int(text)
    except ValueError:
        raise ParseError(f"The workbook's {PART} has a repeat count {text[:20]!r}.") from None
    return max(count, 1)


def _micro(fraction: str | None) -> int:
    return int((fraction or "0")[:6].ljust(6, "0"))


def date_text(value: str) -> str:
    if len(value) == 10 and _DATE.fullmatch(value):
        try:
            return dt.date.fromisoformat(value).isoformat()
        except ValueError:
            return value
    found = _DATETIME.fullmatch(value)
    if found is None:
        return value
    try:
        moment = dt.datetime.fromisoformat(found.group(1))
    except ValueError:
        return value
    return moment.replace(microsecond=_micro(found.group(2))).isoformat()


def time_text(value: str) -> str:
    found = _DURATION.fullmatch(value)
    if found is None:
        return value
    hours, minutes, seconds = (int(found.group(n)) for n in (1, 2, 3))
    if hours > 23 or minutes > 59 or seconds > 59:
        return value
    return dt.time(hours, minutes, seconds, _micro(found.group(4))).isoformat()


def _value_text(attrs: dict[str, str], n: Names) -> str | None:
    """The text of a typed cell from its attributes; ``None``: its paragraphs'."""
    kind = attrs.get(n.value_type)
    if kind in _NUMBERS:
        raw = attrs.get(n.value, "")
        try:
            return cell_text(float(raw))
        except ValueError:
            return raw  # not a number: kept as written
    if kind == "string":
        return attrs.get(n.string_value)
    if kind == "date":
        return date_text(attrs.get(n.date_value, ""))
    if kind == "time":
        return time_text(attrs.get(n.time_value, ""))
    if kind == "boolean":
        return "TRUE" if attrs.get(n.boolean_value, "").strip().lower() == "true" else "FALSE"
    return ""  # no value type: an empty cell (its text, if any, is not a value)


def sheet_rows(path: str, sheet: list[str] | None = None) -> Iterator[list[str]]:
    """The rows of the first table of the ODS at ``path`` (its name appended to
    ``sheet``)."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ParseError(f"The workbook is a damaged zip archive ({exc}).") from None
    with archive:
        stream = xml_stream.open_part(archive, "content.xml", PART)
        if stream is None:
            raise ParseError("The ODS workbook has no content.xml.")
        with stream:
            for cells, count in _rows(stream, sheet):
                for _ in range(count):
                    yield cells[:] if cells else []


def _rows(stream: IO[bytes], sheet: list[str] | None) -> Iterator[Row]:
    head = stream.read(xml_stream.CHUNK)
    n, namespaces = names_for(head)
    TABLE, ROW, CELL, COVERED, P = n.table, n.row, n.cell, n.covered, n.p
    SPACE, TAB, BREAK, ANNOTATION = n.space, n.tab, n.line_break, n.annotation
    ROWS_REPEATED, COLUMNS_REPEATED = n.rows_repeated, n.columns_repeated
    parser = xml_stream.new_parser(namespaces=namespaces)
    out: list[Row] = []
    parts: list[str] = []
    paragraphs: list[str] = []
    state = {"tables": 0, "depth": 0}  # tables seen; > 0: inside the first table
    row: list[str] = []
    row_repeat = 1
    number = 0  # rows returned or pending so far
    pending = 0
    column = 0  # the next cell's 0-based column
    cell_repeat = 1
    cell_text_: str | None = None
    in_cell = False
    in_paragraph = 0
    annotation = 0
    expanded = 0  # cells added by repeating non-empty rows
    max_chars = xml_stream.MAX_CELL_CHARS

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal row, row_repeat, column, cell_repeat, cell_text_, in_cell, in_paragraph
        nonlocal annotation
        if state["depth"] <= 0:
            if name == TABLE and state["depth"] == 0:
                state["tables"] += 1
                if state["tables"] == 1:
                    state["depth"] = 1
                    if sheet is not None:
                        sheet.append(attrs.get(n.table_name, ""))
            return
        if name in (CELL, COVERED):
            cell_repeat = _repeat(attrs, COLUMNS_REPEATED) if COLUMNS_REPEATED in attrs else 1
            # A covered cell's value too, as calamine read it.
            cell_text_ = _value_text(attrs, n) if attrs else ""
            paragraphs.clear()
            in_cell = True
        elif in_cell and not annotation:
            if name == P:
                in_paragraph += 1
                if in_paragraph == 1 and cell_text_ is None:  # else the value is typed
                    parser.CharacterDataHandler = parts.append
            elif in_paragraph and cell_text_ is None:  # a string cell's paragraph
                if name == SPACE:
                    parts.append(" " * min(_repeat(attrs, n.count), max_chars + 1))
                elif name == TAB:
                    parts.append("\t")
                elif name == BREAK:
                    parts.append("\n")
                elif name == ANNOTATION:
                    annotation += 1
                    parser.CharacterDataHandler = None
            elif name == ANNOTATION:
                annotation += 1
                parser.CharacterDataHandler = None
        elif name == ANNOTATION:
            annotation += 1
        elif name == ROW:
            row_repeat = _repeat(attrs, ROWS_REPEATED)
            row = []
            column = 0
        elif name == TABLE:
            state["depth"] += 1  # a table inside a cell: its rows are not the sheet's

    def end(name: str) -> None:
        nonlocal row, pending, number, column, in_cell, in_paragraph, annotation, expanded
        if state["depth"] <= 0:
            return
        if name in (CELL, COVERED):
            in_cell = False
            text = cell_text_
            if text is None:
                text = paragraphs[0] if len(paragraphs) == 1 else "\n".join(paragraphs)
            if len(text) > max_chars:
                raise xml_stream.too_long(PART, f"in row {number + pending + 1}")
            if text:
                if column + cell_repeat > MAX_COLUMNS:
                    raise ParseError(
                        f"Row {number + pending + 1} of the workbook's sheet has cells past "
                        f"column {MAX_COLUMNS}, Excel's last."
                    )
                if "\x00" in text:
                    text = text.replace("\x00", "")
                if column > len(row):
                    row.extend([""] * (column - len(row)))
                row.extend([text] * cell_repeat)
            column += cell_repeat
        elif annotation:
            if name == ANNOTATION:
                annotation -= 1
        elif name == P and in_cell:
            in_paragraph -= 1
            if in_paragraph == 0 and cell_text_ is None:
                parser.CharacterDataHandler = None
                paragraphs.append(parts[0] if len(parts) == 1 else "".join(parts))
                parts.clear()
                if len(paragraphs) > 1 and sum(map(len, paragraphs)) > max_chars:
                    raise xml_stream.too_long(PART, f"in row {number + pending + 1}")
        elif name == ROW:
            if row:
                if number + pending + row_repeat > MAX_ROWS:
                    raise ParseError(
                        f"The workbook's sheet has rows past row {MAX_ROWS}, Excel's last."
                    )
                if row_repeat > 1:
                    expanded += (row_repeat - 1) * len(row)
                    if expanded > MAX_REPEATED_CELLS:
                        raise ParseError(
                            f"The workbook's sheet repeats rows into more than "
                            f"{MAX_REPEATED_CELLS} cells."
                        )
                if pending:
                    out.append(([], pending))
                    number += pending
                    pending = 0
                out.append((row, row_repeat))
                number += row_repeat
                row = []
            else:
                pending += row_repeat
        elif name == TABLE:
            state["depth"] -= 1
            if not state["depth"]:
                state["depth"] = -1  # the first table is done: nothing more is read

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    data = head
    try:
        while state["depth"] >= 0:
            xml_stream.feed_chunk(parser, data, PART, final=not data)
            if out:
                yield from out[:]
                out.clear()
            if not data:
                break
            data = stream.read(xml_stream.CHUNK)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ParseError(f"The workbook's {PART} cannot be inflated ({exc}).") from None
    if state["tables"] == 0:
        raise ParseError("The workbook has no sheet.")
