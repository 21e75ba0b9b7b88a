"""XLSX export in constant memory (XlsxWriter ``constant_memory``).

A summary sheet comes first, then one row per record, continued on further sheets past Excel's
1,048,576-row limit (every sheet has the same header). Every user-supplied string is written
with ``write_string`` (never interpreted as a formula), and text starting with ``= + - @`` also
carries Excel's quote-prefix flag, so it stays text even when a user edits the cell or re-saves
the sheet as CSV. The value itself is not altered (``+6591234567`` stays a valid E.164 number).

Columns (see ``columns.py``): the identity column and the documented result fields, taken from
the result dataclasses; then the engines' extra fields, one column each; then a last ``extra``
column holding, as compact JSON, whatever keys of a row have no column of their own. So every
key of the JSON export is in the workbook, whatever the engine emitted.

Why the extra columns must be known early: ``constant_memory`` writes rows strictly in order
and flushes a row to disk as soon as the next one is started, so the header row is gone once
the first record row is written and a key first seen on row 50,000 can no longer get a header.
Hence, in order of preference:

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
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain, islice
from pathlib import Path
from typing import Any, Protocol

# XlsxWriter ships no type hints (no py.typed) and typeshed has no stubs for it; the few
# methods used here are typed by the protocols below.
import xlsxwriter  # type: ignore[import-untyped]

from .columns import KNOWN_EXTRA_COLUMNS, OVERFLOW_COLUMN, documented_columns, extra_columns_for

EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_COLUMNS = 16_384
FORMULA_TRIGGERS = ("=", "+", "-", "@")
# Rows held back, when the caller gives no extra columns, to find keys the engines are not
# known to emit before the header row is written.
LOOKAHEAD_ROWS = 1_000

Row = tuple[str, Mapping[str, Any] | None]


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


def _compact_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


class _Cells:
    def __init__(self, workbook: _Workbook) -> None:
        self.quoted = workbook.add_format({"quote_prefix": True})
        self.header = workbook.add_format({"bold": True})

    def write(self, sheet: _Worksheet, row: int, col: int, value: object) -> None:
        if value is None:
            sheet.write_blank(row, col, None)
        elif isinstance(value, bool):
            sheet.write_boolean(row, col, value)
        elif isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
            sheet.write_number(row, col, value)
        else:
            if isinstance(value, str):
                text = value
            elif isinstance(value, dict | list):
                text = _compact_json(value)
            else:
                text = str(value)  # also NaN/inf, which XLSX cannot hold as numbers
            if text.startswith(FORMULA_TRIGGERS):
                sheet.write_string(row, col, text, self.quoted)
            else:
                sheet.write_string(row, col, text)


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


def write_xlsx(
    path: Path,
    record_type: str,
    summary: Sequence[tuple[str, object]],
    rows: Iterable[Row],
    *,
    extra_columns: Sequence[str] | None = None,
    max_rows_per_sheet: int = EXCEL_MAX_ROWS,
) -> int:
    """Write the workbook to ``path``; returns the number of record rows written.

    ``rows`` are ``(value, result dict or None)`` in output order. ``extra_columns`` names the
    extra result keys to give a column each, in that order (documented fields in it are
    ignored); ``None`` means the engines' known extras plus the keys of the first
    :data:`LOOKAHEAD_ROWS` rows. Keys without a column land in the final ``extra`` column.
    """
    iterator = iter(rows)
    head: list[Row] = list(islice(iterator, LOOKAHEAD_ROWS)) if extra_columns is None else []
    columns = _layout(record_type, extra_columns, head)
    named = frozenset(columns[:-1])
    overflow_col = len(columns) - 1

    workbook: _Workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    cells = _Cells(workbook)
    summary_sheet = workbook.add_worksheet("Summary")
    summary_sheet.set_column(0, 0, 36)
    summary_sheet.set_column(1, 1, 40)
    for i, (label, value) in enumerate(summary):
        cells.write(summary_sheet, i, 0, label)
        cells.write(summary_sheet, i, 1, value)

    def new_sheet(number: int) -> _Worksheet:
        sheet = workbook.add_worksheet("Results" if number == 1 else f"Results {number}")
        for col, name in enumerate(columns):
            sheet.write_string(0, col, name, cells.header)
        sheet.freeze_panes(1, 0)
        return sheet

    sheet: _Worksheet | None = None
    row_no, sheet_no, written = 0, 0, 0
    for value, result in chain(head, iterator):
        if sheet is None or row_no >= max_rows_per_sheet:
            sheet_no += 1
            sheet = new_sheet(sheet_no)
            row_no = 1
        data = result or {}
        cells.write(sheet, row_no, 0, value)
        for col, name in enumerate(columns[1:overflow_col], start=1):
            cells.write(sheet, row_no, col, data.get(name))
        rest = {key: item for key, item in data.items() if key not in named}
        if rest:
            cells.write(sheet, row_no, overflow_col, _compact_json(rest))
        row_no += 1
        written += 1
    if sheet is None:
        new_sheet(1)
    workbook.close()
    return written
