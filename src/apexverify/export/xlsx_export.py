"""XLSX export in constant memory, written by rustpy-xlsxwriter (Rust) when it can be exact,
by XlsxWriter ``constant_memory`` (pure Python, ~10x slower) when it cannot.

A summary sheet comes first, then one row per record, continued on further sheets past Excel's
1,048,576-row limit (every sheet has the same header, bold, frozen). Every user-supplied
string is written as a string cell (never interpreted as a formula), and text starting with
``= + - @`` also carries Excel's quote-prefix flag, so it stays text even when a user edits the
cell or re-saves the sheet as CSV. The value itself is not altered (``+6591234567`` stays a
valid E.164 number). Booleans are booleans, numbers numbers, ``None`` a blank cell; dicts and
lists are compact JSON text, NaN, infinities and other objects their ``str``; text past
Excel's 32,767 characters is cut there (as XlsxWriter always did).

Columns (see ``columns.py``): the identity column and the documented result fields, taken from
the result dataclasses; then the engines' extra fields, one column each; then a last ``extra``
column holding, as compact JSON, whatever keys of a row have no column of their own. So every
key of the JSON export is in the workbook, whatever the engine emitted.

Two passes. rustpy-xlsxwriter takes a format per *column* or per *row*, never per cell, and
wants the sheets and their column formats before the first row. So the rows are first read
once (memory stays flat) into a compressed spool file next to the output: that pass counts
them (how many sheets), converts the values, and notes per sheet which columns hold quote
prefix text. A sheet's column gets the quote-prefix column format when every value it holds
starts with ``= + - @`` (say, a column of E.164 numbers); a column without such text gets no
format. Then the spool is written by rustpy. When a column mixes such text with other values
(a hostile value among ordinary addresses) no column format is exact, and the spool is written
by XlsxWriter instead, which flags cell by cell. (A row format would flag the row's other
cells, and rustpy duplicates the last row's element when it carries one.)

Why the extra columns must be known early: both writers stream rows strictly in order, so the
header row is written before the first record row and a key first seen on row 50,000 can no
longer get a header. Hence, in order of preference:

1. ``extra_columns`` given (the robust choice): the caller knows the batch's key set (a cheap
   key-only pass, :func:`~apexverify.export.columns.collect_extra_columns`, or a
   ``SELECT DISTINCT`` on the JSON keys) and those columns are written in the given order;
2. ``extra_columns=None``: the columns are the extras the engines are known to emit
   (:data:`~apexverify.export.columns.KNOWN_EXTRA_COLUMNS`), plus any other key found in the
   first :data:`LOOKAHEAD_ROWS` rows, which are held back (a bounded buffer, memory stays flat)
   until the header is written.

In both cases a key that still has no column (an undeclared key, a key first seen after the
look-ahead) goes to the final ``extra`` column, so nothing is ever lost; that column is blank
on the rows whose keys all have a column.

What the rustpy path writes differently from XlsxWriter: numbers are stored as ``250.0``
rather than ``250`` (the same double in Excel; openpyxl reads a float), an empty string is a
blank cell rather than an empty text cell, and the Summary's first pair is its header row
internally, so a number there would be text (the first pair is the batch name).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, islice, repeat
from pathlib import Path
from typing import IO, Any, Protocol

import orjson
import rustpy_xlsxwriter

# XlsxWriter ships no type hints (no py.typed) and typeshed has no stubs for it; the few
# methods used here are typed by the protocols below.
import xlsxwriter  # type: ignore[import-untyped]

from .columns import KNOWN_EXTRA_COLUMNS, OVERFLOW_COLUMN, documented_columns, extra_columns_for

EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_COLUMNS = 16_384
EXCEL_MAX_STRING = 32_767
FORMULA_TRIGGERS = ("=", "+", "-", "@")
# Rows held back, when the caller gives no extra columns, to find keys the engines are not
# known to emit before the header row is written.
LOOKAHEAD_ROWS = 1_000
# Rows per compressed block of the spool.
_SPOOL_BLOCK = 2_000

Row = tuple[str, Mapping[str, Any] | None]
Cells = list[Any]

# A cell value both writers take as it is (a str subclass, a float, a dict... is converted).
_NATIVE = frozenset({str, int, bool, type(None)})
# In a row's JSON, the start of a string cell that starts with a formula trigger (or, rarely, an
# escaped quote inside a string followed by one: then the cells are looked at one by one).
_TRIGGER_IN_JSON = re.compile(rb'"[-+=@]')
_log = logging.getLogger(__name__)
_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def _compact_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _cell(value: object) -> object:
    """A value as both writers store it: None, bool, int, finite float or str."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else str(value)  # XLSX has no NaN/inf
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, dict | list):
        return _compact_json(value)
    return str(value)


def _is_trigger(value: object) -> bool:
    return type(value) is str and value.startswith(FORMULA_TRIGGERS)


def _fit(cells: Cells) -> Cells:
    """Cut text at Excel's limit and big integers to floats (JSON of the spool has 64 bits)."""
    out: Cells = []
    for value in cells:
        if value.__class__ is str and len(value) > EXCEL_MAX_STRING:
            value = value[:EXCEL_MAX_STRING]
        elif value.__class__ is int and not -(2**63) <= value < 2**63:
            value = float(value)
        out.append(value)
    return out


def _layout(
    record_type: str, extra_columns: Sequence[str] | None, head: Sequence[Row]
) -> tuple[str, ...]:
    """Header of every results sheet: documented fields, extras, then the overflow column."""
    documented = documented_columns(record_type)
    if extra_columns is None:
        found = (key for _, result in head if result for key in result)
        keys: Iterable[str] = chain(KNOWN_EXTRA_COLUMNS.get(record_type, ()), found)
        extras = extra_columns_for(record_type, keys)
    else:
        extras = [key for key in dict.fromkeys(extra_columns) if key not in documented]
    # A key named like the overflow column is kept inside it ({"extra": ...}).
    extras = [key for key in extras if key != OVERFLOW_COLUMN]
    # Past Excel's column limit the remaining keys go to the overflow column too.
    extras = extras[: EXCEL_MAX_COLUMNS - len(documented) - 1]
    return (*documented, *extras, OVERFLOW_COLUMN)


# -- the first pass: convert, count, note the quote-prefix columns, spool -----------------------


@dataclass
class _Sheet:
    """What the first pass learnt about one results sheet."""

    rows: int = 0
    # Per column, whether one of its cells holds text starting with a trigger.
    triggers: list[bool] = field(default_factory=list)


class _Spool:
    """Rows as JSON lines in zlib blocks, in an unnamed temporary file (nothing is left behind
    however the process ends)."""

    def __init__(self, folder: Path) -> None:
        self.file: IO[bytes] = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 - close()
        self._block: list[bytes] = []

    def add(self, blob: bytes) -> None:
        self._block.append(blob)
        if len(self._block) >= _SPOOL_BLOCK:
            self._flush()

    def _flush(self) -> None:
        if self._block:
            data = zlib.compress(b"\n".join(self._block), 1)
            self.file.write(len(data).to_bytes(4, "little"))
            self.file.write(data)
            self._block = []

    def rows(self) -> Iterator[Cells]:
        self._flush()
        self.file.seek(0)
        while size := self.file.read(4):
            block = zlib.decompress(self.file.read(int.from_bytes(size, "little")))
            yield from map(orjson.loads, block.split(b"\n"))

    def close(self) -> None:
        self.file.close()


def _first_pass(
    columns: tuple[str, ...], rows: Iterable[Row], spool: _Spool, per_sheet: int
) -> list[_Sheet]:
    """Convert the rows, spool them, count them per sheet and note the trigger columns."""
    keys = columns[1:-1]
    named = frozenset(columns[:-1])
    no_result: Mapping[str, Any] = {}
    has_trigger = _TRIGGER_IN_JSON.search
    native = _NATIVE.issuperset
    dumps, add = orjson.dumps, spool.add
    sheets: list[_Sheet] = []
    sheet = _Sheet(rows=per_sheet)
    for value, result in rows:
        if sheet.rows >= per_sheet:
            sheet = _Sheet(triggers=[False] * len(columns))
            sheets.append(sheet)
        data = result or no_result
        cells: Cells = [value, *map(data.get, keys)]
        if data.keys() <= named:
            cells.append(None)
        else:
            cells.append(_compact_json({k: v for k, v in data.items() if k not in named}))
        if not native(map(type, cells)):
            cells = [_cell(item) for item in cells]
        try:
            blob = dumps(cells)
        except orjson.JSONEncodeError:
            cells = _fit(cells)
            blob = dumps(cells)
        if len(blob) > EXCEL_MAX_STRING:  # only then can one of its strings be too long
            blob = dumps(_fit(cells))
        if has_trigger(blob):
            for col, item in enumerate(cells):
                if _is_trigger(item):
                    sheet.triggers[col] = True
        add(blob)
        sheet.rows += 1
    return sheets or [_Sheet(triggers=[False] * len(columns))]


def _first_pass_cells(
    width: int, rows: Iterable[Sequence[Any]], spool: _Spool, per_sheet: int
) -> list[_Sheet]:
    """:func:`_first_pass` for rows that are already cells (a merged table): each row cut or
    padded to ``width``, converted, spooled, counted per sheet, trigger columns noted."""
    has_trigger = _TRIGGER_IN_JSON.search
    native = _NATIVE.issuperset
    dumps, add = orjson.dumps, spool.add
    sheets: list[_Sheet] = []
    sheet = _Sheet(rows=per_sheet)
    for row in rows:
        if sheet.rows >= per_sheet:
            sheet = _Sheet(triggers=[False] * width)
            sheets.append(sheet)
        cells: Cells = list(row[:width])
        if len(cells) < width:
            cells.extend([None] * (width - len(cells)))
        if not native(map(type, cells)):
            cells = [_cell(item) for item in cells]
        try:
            blob = dumps(cells)
        except orjson.JSONEncodeError:
            cells = _fit(cells)
            blob = dumps(cells)
        if len(blob) > EXCEL_MAX_STRING:
            blob = dumps(_fit(cells))
        if has_trigger(blob):
            for col, item in enumerate(cells):
                if _is_trigger(item):
                    sheet.triggers[col] = True
        add(blob)
        sheet.rows += 1
    return sheets or [_Sheet(triggers=[False] * width)]


def _quoted_columns(sheets: Sequence[_Sheet], spool: _Spool) -> list[list[bool]] | None:
    """Per sheet and column, whether the column gets the quote-prefix format; None when no
    column format is exact: a column that holds trigger text holds something else too (read
    again from the spool, only when some sheet has trigger text)."""
    plans = [sheet.triggers for sheet in sheets]
    if not any(map(any, plans)):
        return plans
    rows = spool.rows()
    for sheet, flags in zip(sheets, plans, strict=True):
        quoted = [col for col, flag in enumerate(flags) if flag]
        for cells in islice(rows, sheet.rows):
            for col in quoted:
                item = cells[col]
                # rustpy writes "" as a blank cell, format or not
                if item is not None and item != "" and not _is_trigger(item):
                    return None
    return plans


# -- rustpy-xlsxwriter ------------------------------------------------------------------------


class _Label(str):
    """A Summary header key: equal only to itself, so two equal texts are two columns."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    __hash__ = object.__hash__


def _summary_records(
    summary: Sequence[tuple[str, object]], quoted: rustpy_xlsxwriter.Format
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The Summary for rustpy: its first pair is the header row (rustpy writes one from the
    keys of the first record), the others records; formats for the pairs whose value (or
    label) starts with a trigger. The sheet is small, so it is written in memory, where row
    formats are exact (the label of such a pair carries the flag too)."""
    options: dict[str, Any] = {"column_widths": [36, 40], "dedupe_strings": True}
    if not summary:  # two columns that write no cell, for the widths
        return [{_Label(""): None, _Label(""): None}], options
    pairs = [_fit([_cell(label), _cell(value)]) for label, value in summary]
    first_label, first_value = pairs[0]
    label_key = _Label("" if first_label is None else str(first_label))
    value_key = _Label("" if first_value is None else str(first_value))
    records: list[dict[str, Any]] = [
        {label_key: label, value_key: value} for label, value in pairs[1:]
    ]
    if not records:
        records = [{label_key: None, value_key: None}]  # a row that writes no cell
    if _is_trigger(first_label) or _is_trigger(first_value):
        options["header_format"] = quoted
    flagged = {
        row: quoted
        for row, (label, value) in enumerate(pairs)
        if row and (_is_trigger(label) or _is_trigger(value))
    }
    if flagged:
        options["row_formats"] = flagged
    return records, options


def _sheet_name(number: int) -> str:
    return "Results" if number == 1 else f"Results {number}"


def _write_rustpy(
    path: Path,
    columns: tuple[str, ...],
    summary: Sequence[tuple[str, object]],
    sheets: Sequence[_Sheet],
    quoted_columns: Sequence[Sequence[bool]],
    spool: _Spool,
) -> None:
    quoted = rustpy_xlsxwriter.Format().set_quote_prefix()
    bold = rustpy_xlsxwriter.Format().set_bold()
    records, summary_options = _summary_records(summary, quoted)
    entries: list[tuple[str, Any]] = [("Summary", records)]
    options: dict[str, Any] = {
        option: {"Summary": value} for option, value in summary_options.items()
    }
    options.setdefault("header_format", {})
    options.setdefault("column_formats", {})
    freeze: dict[str, dict[str, int]] = {}
    lines = spool.rows()
    empty_row = dict.fromkeys(columns)  # writes the header and no cell
    for number, (sheet, flags) in enumerate(zip(sheets, quoted_columns, strict=True), start=1):
        name = _sheet_name(number)
        data: Iterable[dict[str, Any]] = map(
            dict, map(zip, repeat(columns), islice(lines, sheet.rows))
        )
        entries.append((name, data if sheet.rows else [empty_row]))
        options["header_format"][name] = bold
        if any(flags):
            options["column_formats"][name] = [quoted if flag else None for flag in flags]
        freeze[name] = {"row": 1, "col": 0}
    try:
        rustpy_xlsxwriter.write_worksheets(
            entries,
            path,
            freeze_panes=freeze,
            **{option: value for option, value in options.items() if value},
        )
    except (OSError, RuntimeError) as exc:
        # rustpy reports I/O errors as text ("... (os error 28)"): give them their errno back,
        # so a full disk is recognisable (``storage.tempfiles.is_disk_full``).
        found = _OS_ERROR.search(str(exc))
        if found and getattr(exc, "errno", None) is None:
            code = int(found.group(1))
            raise OSError(code, os.strerror(code), str(path)) from exc
        raise


# -- XlsxWriter, for the workbooks no column format can flag exactly ---------------------------


class _Worksheet(Protocol):
    def write_string(self, row: int, col: int, string: str, cell_format: object = ...) -> int: ...

    def write_number(self, row: int, col: int, number: float, cell_format: object = ...) -> int: ...

    def write_boolean(
        self, row: int, col: int, boolean: bool, cell_format: object = ...
    ) -> int: ...

    def write_blank(self, row: int, col: int, blank: None, cell_format: object = ...) -> int: ...

    def set_column(self, first_col: int, last_col: int, width: float) -> int: ...

    def freeze_panes(self, row: int, col: int) -> None: ...


class _Workbook(Protocol):
    def add_format(self, properties: dict[str, object]) -> object: ...

    def add_worksheet(self, name: str) -> _Worksheet: ...

    def close(self) -> None: ...


class _Cells:
    def __init__(self, workbook: _Workbook) -> None:
        self.quoted = workbook.add_format({"quote_prefix": True})
        self.header = workbook.add_format({"bold": True})

    def write(self, sheet: _Worksheet, row: int, col: int, value: object) -> None:
        """``value`` as :func:`_cell` returns it."""
        if value is None:
            sheet.write_blank(row, col, None)
        elif isinstance(value, bool):
            sheet.write_boolean(row, col, value)
        elif isinstance(value, int | float):
            sheet.write_number(row, col, value)
        else:
            text = str(value)
            if text.startswith(FORMULA_TRIGGERS):
                sheet.write_string(row, col, text, self.quoted)
            else:
                sheet.write_string(row, col, text)


def _write_xlsxwriter(
    path: Path,
    columns: tuple[str, ...],
    summary: Sequence[tuple[str, object]],
    sheets: Sequence[_Sheet],
    spool: _Spool,
) -> None:
    workbook: _Workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    cells = _Cells(workbook)
    summary_sheet = workbook.add_worksheet("Summary")
    summary_sheet.set_column(0, 0, 36)
    summary_sheet.set_column(1, 1, 40)
    for i, (label, value) in enumerate(summary):
        pair = _fit([_cell(label), _cell(value)])
        cells.write(summary_sheet, i, 0, pair[0])
        cells.write(summary_sheet, i, 1, pair[1])
    lines = spool.rows()
    for number, sheet_info in enumerate(sheets, start=1):
        sheet = workbook.add_worksheet(_sheet_name(number))
        for col, name in enumerate(columns):
            sheet.write_string(0, col, name, cells.header)
        sheet.freeze_panes(1, 0)
        for row_no, line in enumerate(islice(lines, sheet_info.rows), start=1):
            for col, value in enumerate(line):
                cells.write(sheet, row_no, col, value)
    workbook.close()


Summary = Sequence[tuple[str, object]]


def _resolved(summary: Summary | Callable[[], Summary]) -> Summary:
    return summary() if callable(summary) else summary


def write_xlsx(
    path: Path,
    record_type: str,
    summary: Summary | Callable[[], Summary],
    rows: Iterable[Row],
    *,
    extra_columns: Sequence[str] | None = None,
    max_rows_per_sheet: int = EXCEL_MAX_ROWS,
) -> int:
    """Write the workbook to ``path``; returns the number of record rows written.

    ``rows`` are ``(value, result dict or None)`` in output order, read once. ``extra_columns``
    names the extra result keys to give a column each, in that order (documented fields in it
    are ignored); ``None`` means the engines' known extras plus the keys of the first
    :data:`LOOKAHEAD_ROWS` rows. Keys without a column land in the final ``extra`` column.
    ``max_rows_per_sheet`` counts the header row (Excel's limit by default). The spool of the
    first pass is an unnamed temporary file in ``path``'s folder. ``summary`` may be a
    callable: it is called once the rows are spooled (its figures can be computed meanwhile).
    """
    if max_rows_per_sheet < 2:
        raise ValueError("a results sheet holds its header and at least one row")
    iterator = iter(rows)
    head: list[Row] = list(islice(iterator, LOOKAHEAD_ROWS)) if extra_columns is None else []
    columns = _layout(record_type, extra_columns, head)
    spool = _Spool(path.parent)
    try:
        sheets = _first_pass(columns, chain(head, iterator), spool, max_rows_per_sheet - 1)
        del head
        plans = _quoted_columns(sheets, spool)
        summary = _resolved(summary)
        if plans is not None:
            _write_rustpy(path, columns, summary, sheets, plans, spool)
        else:
            _log.info(
                "XLSX export by XlsxWriter (slower): a column mixes text starting with "
                "= + - @ with other values, which only a format per cell can flag exactly"
            )
            _write_xlsxwriter(path, columns, summary, sheets, spool)
    finally:
        spool.close()
    return sum(sheet.rows for sheet in sheets)


def write_table(
    path: Path,
    header: Sequence[str],
    summary: Summary | Callable[[], Summary],
    rows: Iterable[Sequence[Any]],
    *,
    max_rows_per_sheet: int = EXCEL_MAX_ROWS,
) -> int:
    """Write a workbook whose results sheets have the given ``header`` and rows of cells (a
    merged table, ``export/merged.py``): the same Summary, sheet split, cell conversions,
    formula guard and writers as :func:`write_xlsx`. Header names may repeat or be blank (an
    original file's header is written as it is). Returns the number of rows written."""
    if max_rows_per_sheet < 2:
        raise ValueError("a results sheet holds its header and at least one row")
    if not header:
        raise ValueError("a table has at least one column")
    header = [str(name)[:EXCEL_MAX_STRING] for name in header][:EXCEL_MAX_COLUMNS]
    # rustpy writes the header from the keys of a row dict: labels equal only to themselves
    # keep two equal (or blank) original names two columns.
    columns = tuple(_Label(name) for name in header)
    spool = _Spool(path.parent)
    try:
        sheets = _first_pass_cells(len(columns), rows, spool, max_rows_per_sheet - 1)
        plans = _quoted_columns(sheets, spool)
        summary = _resolved(summary)
        if plans is not None:
            _write_rustpy(path, columns, summary, sheets, plans, spool)
        else:
            _write_xlsxwriter(path, columns, summary, sheets, spool)
    finally:
        spool.close()
    return sum(sheet.rows for sheet in sheets)
