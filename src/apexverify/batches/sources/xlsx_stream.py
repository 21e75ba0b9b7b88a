"""The first sheet of an XLSX workbook, row by row, in constant memory.

The package is navigated as Excel does: ``xl/workbook.xml`` lists the sheets (the first one
is read, whatever its part is called), ``xl/_rels/workbook.xml.rels`` names its part, and
``xl/styles.xml`` says which cell styles are dates. The sheet's XML is then parsed as it
inflates (``xml_stream``); shared strings live in temporary files (``shared_strings``).
Two parsers read the sheet (``_rows``): a fast path for the forms the common writers use,
and pyexpat callbacks for any well-formed sheet, which take over where the fast path stops.

Rows come out as :func:`cells.cell_text` gave python-calamine's values (``123`` for a whole
number, ISO 8601 dates, ``TRUE``/``FALSE``, an error cell empty), with two exceptions:

* Columns count from the sheet's column A (calamine started at the leftmost column that
  holds a cell, so a sheet starting at column B had B as column 1).
* Rows count from the sheet's row 1, as calamine did: the gap before the first row and
  between rows are empty rows; empty rows after the last cell are not returned. A row ends
  at its last non-empty cell (the caller pads rows).

A row number past Excel's 1,048,576 or a column past its 16,384 (XFD) is a
:class:`ParseError`; so is a cell longer than ``xml_stream.MAX_CELL_CHARS``.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from typing import IO

from ...errors import ParseError
from . import number_formats, xml_stream
from .shared_strings import SharedStrings

MAX_ROWS = 1_048_576
MAX_COLUMNS = 16_384
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_STRICT = "http://purl.oclc.org/ooxml/spreadsheetml/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_STRICT_REL = "http://purl.oclc.org/ooxml/officeDocument/relationships"
_PACKAGE_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_WORKBOOK = "xl/workbook.xml"
_SMALL_PART = 64 * 1024 * 1024  # workbook.xml, rels, styles: inflated bytes read at most

Row = list[str] | int  # a row's cells, or a number of empty rows


def _local(name: str) -> str:
    return name.rsplit(" ", 1)[-1]


def _place(row: list[str], column: int, text: str, part: str, number: int, max_chars: int) -> None:
    """One cell's text into ``row`` at ``column`` (the blank cells before it filled in), for
    both sheet parsers: checked against ``max_chars``, NULs dropped."""
    if len(text) > max_chars:
        raise xml_stream.too_long(part, f"in row {number}")
    if "\x00" in text:
        text = text.replace("\x00", "")
    size = len(row)
    if column == size:
        row.append(text)
    elif column > size:
        row.extend([""] * (column - size))
        row.append(text)
    else:
        row[column] = text


def _parse_small(
    archive: zipfile.ZipFile, name: str, start: Callable[[str, dict[str, str]], None]
) -> bool:
    """Parse a small part with namespaces; ``False`` when it is absent."""
    stream = xml_stream.open_part(archive, name)
    if stream is None:
        return False
    with stream:
        info = archive.getinfo(name)
        if info.file_size > _SMALL_PART:
            raise ParseError(f"The workbook's {name} is too large ({info.file_size} bytes).")
        parser = xml_stream.new_parser(namespaces=True)
        parser.StartElementHandler = start
        xml_stream.feed(parser, stream, name)
    return True


class _Book:
    """What the sheet's cells need from the rest of the package."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.sheet_name = ""
        self.sheet_part = ""
        self.date_1904 = False
        self.date_styles: dict[str, int] = {}  # cell style index (as text) -> kind
        self.strings_part: str | None = None
        self._read_workbook()

    def _read_workbook(self) -> None:
        first: dict[str, str] = {}

        def start(name: str, attrs: dict[str, str]) -> None:
            local = _local(name)
            if local == "sheet" and not first:
                first.update(attrs)
                first.setdefault("", "")
            elif local == "workbookPr":
                self.date_1904 = attrs.get("date1904", "").lower() in ("1", "true")

        _parse_small(self.archive, _WORKBOOK, start)
        if not first:
            raise ParseError("The workbook has no sheet.")
        self.sheet_name = first.get("name", "")
        rel_id = first.get(f"{_REL} id") or first.get(f"{_STRICT_REL} id") or ""
        targets: dict[str, str] = {}
        kinds: dict[str, str] = {}

        def rel(name: str, attrs: dict[str, str]) -> None:
            if _local(name) == "Relationship" and "Id" in attrs and "Target" in attrs:
                targets[attrs["Id"]] = attrs["Target"]
                kinds[attrs["Id"]] = attrs.get("Type", "").rsplit("/", 1)[-1]

        _parse_small(self.archive, "xl/_rels/workbook.xml.rels", rel)
        if rel_id not in targets:
            raise ParseError(f"The workbook does not say where its sheet {self.sheet_name!r} is.")
        self.sheet_part = self._resolve(targets[rel_id])
        for key, kind in kinds.items():
            if kind == "sharedStrings":
                self.strings_part = self._resolve(targets[key])
            elif kind == "styles":
                self._read_styles(self._resolve(targets[key]))

    def _resolve(self, target: str) -> str:
        if target.startswith("/"):
            return posixpath.normpath(target.lstrip("/"))
        return posixpath.normpath(posixpath.join("xl", target))

    def _read_styles(self, part: str) -> None:
        custom: dict[int, int] = {}
        formats: list[int] = []  # numFmtId of each cellXfs/xf
        inside = [False]

        def start(name: str, attrs: dict[str, str]) -> None:
            local = _local(name)
            if local == "numFmt":
                with suppress(ValueError):
                    custom[int(attrs.get("numFmtId", ""))] = number_formats.format_kind(
                        attrs.get("formatCode", "")
                    )
            elif local == "cellXfs":
                inside[0] = True
            elif local in ("cellStyleXfs", "cellStyles", "dxfs", "tableStyles", "extLst"):
                inside[0] = False
            elif local == "xf" and inside[0]:
                try:
                    formats.append(int(attrs.get("numFmtId", "0")))
                except ValueError:
                    formats.append(0)

        _parse_small(self.archive, part, start)
        for index, format_id in enumerate(formats):
            kind = custom.get(format_id)
            if kind is None:
                kind = number_formats.builtin_kind(format_id)
            if kind != number_formats.OTHER:
                self.date_styles[str(index)] = kind


def _column(letters: str) -> int:
    """0-based index of a column's letters (``A`` = 0); -1 when they are not letters."""
    index = 0
    for char in letters:
        code = ord(char) - 64
        if not 1 <= code <= 26:
            code = ord(char) - 96  # lowercase, as some writers emit
            if not 1 <= code <= 26:
                return -1
        index = index * 26 + code
    return index - 1


def sheet_rows(path: str, sheet: list[str] | None = None) -> Iterator[list[str]]:
    """The rows of the first sheet of the XLSX at ``path`` (its name appended to
    ``sheet``)."""
    with ExitStack() as stack:
        try:
            archive = stack.enter_context(zipfile.ZipFile(path))
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise ParseError(f"The workbook is a damaged zip archive ({exc}).") from None
        book = _Book(archive)
        if sheet is not None:
            sheet.append(book.sheet_name)
        strings = SharedStrings()
        stack.callback(strings.close)
        if book.strings_part is not None:
            stream = xml_stream.open_part(archive, book.strings_part)
            if stream is not None:
                with stream:
                    strings.load(stream)
        stream = xml_stream.open_part(archive, book.sheet_part)
        if stream is None:
            raise ParseError(f"The workbook's sheet {book.sheet_part} is missing.")
        stack.enter_context(stream)
        for item in _rows(stream, book, strings):
            if isinstance(item, int):
                for _ in range(item):
                    yield []
            else:
                yield item


def _converter(
    book: _Book, strings: SharedStrings, part: str
) -> Callable[[str | None, str | None, str | None, list[str]], str]:
    """The text of a cell from its type (``t``), style (``s``), ``<v>`` text and inline runs
    (``<is>``); ``""`` for an empty or error cell. Shared by both sheet parsers."""
    date_styles, date_1904 = book.date_styles, book.date_1904
    serial_text = number_formats.serial_text

    def convert(
        cell_type: str | None, style: str | None, value: str | None, inline: list[str]
    ) -> str:
        if cell_type is None or cell_type == "n":
            if not value:
                return ""
            try:
                number_value = float(value)
                # Python's float() also takes " 42 " and "1_000"; calamine (Rust)
                # did not, and kept them as text: so do we.
                if "_" in value or value[0] <= " " or value[-1] <= " ":
                    raise ValueError(value)
            except ValueError:
                text = value  # not a number: kept as written
            else:
                kind = date_styles.get(style) if style is not None else None
                if kind:
                    text = serial_text(number_value, kind, date_1904)
                elif number_value.is_integer() and abs(number_value) < 9007199254740992:
                    text = str(int(number_value))
                else:
                    text = repr(number_value)
        elif cell_type == "s":
            if not value:
                return ""
            try:
                text = strings[int(value)]
            except ValueError:
                raise ParseError(
                    f"The workbook's {part} refers to shared string {value[:20]!r}."
                ) from None
        elif cell_type == "inlineStr":
            text = inline[0] if len(inline) == 1 else "".join(inline)
            inline.clear()
        elif cell_type == "str" or cell_type == "d":
            text = value or ""
        elif cell_type == "b":
            if not value:
                return ""
            text = "TRUE" if value.strip() in ("1", "true") else "FALSE"
        else:  # "e", an error such as #DIV/0!: empty, as calamine gave it
            return ""
        return text

    return convert


def _callback_rows(
    stream: IO[bytes],
    convert: Callable[[str | None, str | None, str | None, list[str]], str],
    part: str,
    prefix: str,
    head: bytes,
    number: int = 0,
    pending: int = 0,
) -> Iterator[Row]:
    """The sheet's rows parsed with pyexpat callbacks, from ``head`` (the bytes already
    read: the document's start, or a synthetic start then the rows from where the fast
    path left off, ``number`` and ``pending`` its state) then the rest of ``stream``."""
    ROW, C, V, T, IS, RPH = (prefix + n for n in ("row", "c", "v", "t", "is", "rPh"))
    parser = xml_stream.new_parser()
    out: list[Row] = []
    parts: list[str] = []
    inline: list[str] = []
    columns: dict[str, int] = {}
    row: list[str] | None = None
    # number: the current row's number (1-based); pending: empty rows not yet returned
    # (they are dropped if nothing follows).
    column = -1
    cell_type: str | None = None
    style: str | None = None
    value: str | None = None
    phonetic = 0
    max_chars = xml_stream.MAX_CELL_CHARS

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal row, number, pending, column, cell_type, style, value, phonetic
        if name == C:
            ref = attrs.get("r")
            if ref is None:
                column += 1
            else:
                letters = ref.rstrip("0123456789")
                found = columns.get(letters)
                if found is None:
                    found = _column(letters)
                    if found < 0:
                        raise ParseError(f"The workbook's {part} has a cell named {ref[:20]!r}.")
                    if len(columns) < MAX_COLUMNS:
                        columns[letters] = found
                column = found
            if column >= MAX_COLUMNS:
                raise ParseError(
                    f"Row {number} of the workbook's sheet has a cell past column XFD, "
                    f"Excel's last ({MAX_COLUMNS} columns)."
                )
            cell_type = attrs.get("t")
            style = attrs.get("s")
            value = None
        elif name == T:
            if not phonetic:  # <t> is only found in <is> (and its <rPh>) in a sheet
                parser.CharacterDataHandler = parts.append
        elif name == V:
            parser.CharacterDataHandler = parts.append
        elif name == IS:
            inline.clear()
        elif name == ROW:
            given = attrs.get("r")
            if given is None:
                current = number + 1
            else:
                try:
                    current = max(int(given), number + 1)
                except ValueError:
                    raise ParseError(
                        f"The workbook's {part} has a row numbered {given[:20]!r}."
                    ) from None
            if current > MAX_ROWS:
                raise ParseError(
                    f"The workbook's sheet has a row numbered {current}, past Excel's last "
                    f"({MAX_ROWS})."
                )
            pending += current - number - 1
            number = current
            row = []
            column = -1
        elif name == RPH:
            phonetic += 1

    def end(name: str) -> None:
        nonlocal row, pending, value, phonetic
        if name == C:
            text = convert(cell_type, style, value, inline)
            if not text or row is None:
                return
            _place(row, column, text, part, number, max_chars)
        elif name == T:
            if parts:
                parser.CharacterDataHandler = None
                inline.append(parts[0] if len(parts) == 1 else "".join(parts))
                parts.clear()
                if len(inline) > 1 and sum(map(len, inline)) > max_chars:
                    raise xml_stream.too_long(part, f"in row {number}")
            elif not phonetic:
                parser.CharacterDataHandler = None
        elif name == V:
            parser.CharacterDataHandler = None
            value = parts[0] if len(parts) == 1 else "".join(parts)
            parts.clear()
        elif name == ROW:
            if row:
                if pending:
                    out.append(pending)
                    pending = 0
                out.append(row)
            else:
                pending += 1
            row = None
        elif name == RPH:
            phonetic -= 1

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    chunks: list[list[Row]] = []

    def collect() -> None:
        if out:
            chunks.append(out[:])
            out.clear()

    # The rows of a chunk are yielded before the next chunk is parsed: only one chunk's rows
    # are ever held.
    data = head
    try:
        while data:
            xml_stream.feed_chunk(parser, data, part)
            collect()
            while chunks:
                yield from chunks.pop(0)
            data = stream.read(xml_stream.CHUNK)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ParseError(f"The workbook's {part} cannot be inflated ({exc}).") from None
    xml_stream.feed_chunk(parser, b"", part, final=True)
    collect()
    while chunks:
        yield from chunks.pop(0)


# The fast path (see _rows). One token a match: a row's start (or an empty row), a row's end,
# or a whole cell in the forms the common writers use (attributes r, s, t in that order; an
# optional formula, then <v>, or one plain inline <t>). Anything else, whitespace between
# elements included, leaves a gap between two matches and sends the sheet to the callbacks.
FAST = True  # tests turn it off to compare the two parsers
_FAST_BUFFER = 8 * 1024 * 1024  # bytes held at most waiting for a row's end
_FAST_TOKEN = (
    r'<{p}row(?=[\s/>])(?: r="(\d+)")?([^>]*?)(/?)>'
    r"|(</{p}row>)"
    r'|<{p}c(?: r="([A-Z]{{1,3}})\d+")?(?: s="(\d+)")?(?: t="([a-zA-Z]+)")?((?: [^>]*?)?)(?:/>'
    r"|>(?:<{p}f(?: [^>]*)?(?:/>|>[^<]*</{p}f>))?"
    r"(?:<{p}v>([^<]*)</{p}v>|<{p}v/>"
    r'|<{p}is>(?:<{p}t(?: xml:space="preserve")?>([^<]*)</{p}t>|<{p}t/>)</{p}is>)?</{p}c>)'
)
_DIGITS = frozenset("0123456789.")
_ENTITY = re.compile(r"&(?:#x([0-9a-fA-F]+)|#([0-9]+)|(amp|lt|gt|quot|apos));")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
_ENCODING = re.compile(rb'^(?:\xef\xbb\xbf)?<\?xml[^>]*?encoding\s*=\s*["\']([^"\']+)["\']')


def _entity(found: re.Match[str]) -> str:
    hexa, decimal, name = found.groups()
    if name:
        return _NAMED[name]
    return chr(int(hexa, 16) if hexa else int(decimal))


def _xml_text(raw: str) -> str:
    """Character data as expat reports it: line ends normalised, then references replaced
    (the validating parser has already refused any other entity)."""
    if "\r" in raw:
        raw = raw.replace("\r\n", "\n").replace("\r", "\n")
    return _ENTITY.sub(_entity, raw) if "&" in raw else raw


def _rows(stream: IO[bytes], book: _Book, strings: SharedStrings) -> Iterator[Row]:
    """The sheet's rows as parsed chunk by chunk: a list of cells, or a count of empty
    rows (a gap in the row numbers is never expanded in memory).

    Fast path: a pyexpat parser with no Python handler checks the XML (well-formed, no DTD)
    at C speed, and the rows are cut out of the same bytes by one strict pattern
    (:data:`_FAST_TOKEN`), a match a cell; about 40% less CPU than the callbacks, which cost
    five Python calls a cell (docs/benchmarks.md, "Table input"). At the first stretch of
    rows the pattern does not cover exactly, the rest of the sheet, from that stretch on,
    is parsed by the callbacks (``_callback_rows``), which read any well-formed sheet.
    """
    part = f"sheet ({book.sheet_part})"
    convert = _converter(book, strings, part)
    head = stream.read(xml_stream.CHUNK)
    prefix = xml_stream.root_prefix(head, "worksheet")
    declared = _ENCODING.match(head)
    utf8 = declared is None or declared.group(1).lower() in (b"utf-8", b"utf8")
    if not FAST or not utf8 or head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        yield from _callback_rows(stream, convert, part, prefix, head)
        return
    token = re.compile(_FAST_TOKEN.format(p=re.escape(prefix)))
    row_start = re.compile(b"<" + re.escape(prefix.encode()) + rb"row[\s/>]")
    row_end = f"</{prefix}row>".encode()
    resume = f"<{prefix}worksheet><{prefix}sheetData>".encode()
    validator = xml_stream.new_parser()
    columns: dict[str, int] = {}
    number = pending = 0
    buffer = b""
    data = head
    first = True
    while True:
        xml_stream.feed_chunk(validator, data, part, final=not data)
        buffer += data
        cut = buffer.rfind(row_end) + len(row_end) if data else len(buffer)
        if cut < len(row_end) and len(buffer) > _FAST_BUFFER:  # a row this long: callbacks
            start = row_start.search(buffer)
            restart = buffer if first or start is None else resume + buffer[start.start() :]
            yield from _callback_rows(stream, convert, part, prefix, restart, number, pending)
            return
        if cut >= len(row_end) or not data:
            segment, buffer = buffer[:cut], buffer[cut:]
            begin_at = row_start.search(segment)
            begin = begin_at.start() if begin_at else len(segment)
            # A comment, CDATA section or processing instruction could hide or fake a row
            # from the pattern (and a cut at a "</row>" inside one would not be between
            # rows): from such a segment on, the sheet is the callbacks'. The first
            # segment's XML declaration is the one "<?" allowed.
            tricky = b"<!" in segment or b"<?" in (segment[begin:] if first else segment)
            rows: tuple[list[Row], int, int] | None = None
            if not tricky:
                if begin_at is None:
                    rows = ([], number, pending)
                else:
                    rows = _fast_segment(
                        segment[begin:].decode("utf-8", "surrogatepass"),
                        token,
                        convert,
                        columns,
                        number,
                        pending,
                        part,
                    )
            if rows is None:  # not the common form: the callbacks from this segment on
                # Every earlier segment ended at a real "</row>" (they held no "<!" or
                # "<?"), so this one starts between rows, inside <sheetData>.
                restart = segment + buffer if first else resume + segment + buffer
                yield from _callback_rows(stream, convert, part, prefix, restart, number, pending)
                return
            found, number, pending = rows
            yield from found
            first = False
        if not data:
            return
        try:
            data = stream.read(xml_stream.CHUNK)
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise ParseError(f"The workbook's {part} cannot be inflated ({exc}).") from None


def _fast_segment(
    text: str,
    token: re.Pattern[str],
    convert: Callable[[str | None, str | None, str | None, list[str]], str],
    columns: dict[str, int],
    number: int,
    pending: int,
    part: str,
) -> tuple[list[Row], int, int] | None:
    """The rows of ``text`` (whole rows, from a ``<row``), the new row number and pending
    empty rows; ``None`` when the pattern does not cover it all."""
    out: list[Row] = []
    row: list[str] | None = None
    column = -1
    position = 0
    inline: list[str] = []
    max_chars = xml_stream.MAX_CELL_CHARS
    for found in token.finditer(text):
        if found.start() != position:
            return None
        position = found.end()
        given, row_rest, empty, row_close, letters, style, cell_type, rest, value, runs = (
            found.groups()
        )
        if rest is not None:  # a cell
            if row is None or rest:  # a cell outside a row, or other attributes
                return None
            if letters is None:
                column += 1
            else:
                at = columns.get(letters)
                if at is None:
                    at = _column(letters)
                    columns[letters] = at
                column = at
            if column >= MAX_COLUMNS:
                raise ParseError(
                    f"Row {number} of the workbook's sheet has a cell past column XFD, "
                    f"Excel's last ({MAX_COLUMNS} columns)."
                )
            # The two commonest cells first, without a call: an inline string, and a
            # number without a style (same rules as ``convert``).
            if cell_type == "inlineStr":
                if not runs:
                    continue
                cell = _xml_text(runs) if "&" in runs or "\r" in runs else runs
            elif cell_type is None and style is None and value and value[-1] in _DIGITS:
                try:
                    number_value = float(value)
                except ValueError:
                    cell = convert(cell_type, style, _xml_text(value), inline)
                else:
                    if "_" in value or value[0] <= " ":
                        cell = _xml_text(value)
                    elif number_value.is_integer() and abs(number_value) < 9007199254740992:
                        cell = str(int(number_value))
                    else:
                        cell = repr(number_value)
            else:
                cell = convert(cell_type, style, _xml_text(value) if value else value, inline)
                if not cell:
                    continue
            _place(row, column, cell, part, number, max_chars)
        elif row_close is not None:
            if row is None:
                return None
            if row:
                if pending:
                    out.append(pending)
                    pending = 0
                out.append(row)
            else:
                pending += 1
            row = None
        else:  # a row's start
            if row is not None or (row_rest and "r=" in row_rest):
                return None  # a row in a row, or r after another attribute
            current = max(int(given), number + 1) if given else number + 1
            if current > MAX_ROWS:
                raise ParseError(
                    f"The workbook's sheet has a row numbered {current}, past Excel's last "
                    f"({MAX_ROWS})."
                )
            pending += current - number - 1
            number = current
            if empty:
                pending += 1
            else:
                row = []
                column = -1
    if position != len(text) or row is not None:
        return None
    return out, number, pending
