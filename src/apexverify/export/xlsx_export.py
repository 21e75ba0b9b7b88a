"""XLSX export in constant memory (XlsxWriter ``constant_memory``).

A summary sheet comes first, then one row per record with every result field as a column,
continued on further sheets past Excel's 1,048,576-row limit. Every user-supplied string is
written with ``write_string`` (never interpreted as a formula), and text starting with
``= + - @`` also carries Excel's quote-prefix flag, so it stays text even when a user edits
the cell or re-saves the sheet as CSV. The value itself is not altered (``+6591234567`` stays
a valid E.164 number).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import xlsxwriter

EXCEL_MAX_ROWS = 1_048_576
FORMULA_TRIGGERS = ("=", "+", "-", "@")

EMAIL_COLUMNS = (
    "email",
    "valid",
    "wrong",
    "unknown",
    "quality",
    "result",
    "is_syntax_error",
    "is_free",
    "is_role",
    "is_disposable",
    "is_catch_all",
)
PHONE_COLUMNS = (
    "phone",
    "valid",
    "wrong",
    "unknown",
    "type",
    "status",
    "is_syntax_error",
    "is_ported",
    "current_network_mcc",
    "current_network_mnc",
    "operator",
)


class _Cells:
    def __init__(self, workbook: Any) -> None:
        self.quoted = workbook.add_format({"quote_prefix": True})
        self.header = workbook.add_format({"bold": True})

    def write(self, sheet: Any, row: int, col: int, value: Any) -> None:
        if value is None:
            sheet.write_blank(row, col, None)
        elif isinstance(value, bool):
            sheet.write_boolean(row, col, value)
        elif isinstance(value, int | float):
            sheet.write_number(row, col, value)
        else:
            text = value if isinstance(value, str) else str(value)
            if text.startswith(FORMULA_TRIGGERS):
                sheet.write_string(row, col, text, self.quoted)
            else:
                sheet.write_string(row, col, text)


def write_xlsx(
    path: Path,
    record_type: str,
    summary: list[tuple[str, Any]],
    rows: Iterable[tuple[str, dict[str, Any] | None]],
    *,
    max_rows_per_sheet: int = EXCEL_MAX_ROWS,
) -> int:
    """Write the workbook to ``path``; returns the number of record rows written."""
    columns = EMAIL_COLUMNS if record_type == "email" else PHONE_COLUMNS
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    cells = _Cells(workbook)
    summary_sheet = workbook.add_worksheet("Summary")
    summary_sheet.set_column(0, 0, 36)
    summary_sheet.set_column(1, 1, 40)
    for i, (label, value) in enumerate(summary):
        cells.write(summary_sheet, i, 0, label)
        cells.write(summary_sheet, i, 1, value)

    sheet, row_no, sheet_no, written = None, 0, 0, 0
    for value, result in rows:
        if sheet is None or row_no >= max_rows_per_sheet:
            sheet_no += 1
            sheet = workbook.add_worksheet("Results" if sheet_no == 1 else f"Results {sheet_no}")
            for col, name in enumerate(columns):
                sheet.write_string(0, col, name, cells.header)
            sheet.freeze_panes(1, 0)
            row_no = 1
        data = result or {}
        cells.write(sheet, row_no, 0, value)
        for col, name in enumerate(columns[1:], start=1):
            cells.write(sheet, row_no, col, data.get(name))
        row_no += 1
        written += 1
    if sheet is None:
        sheet = workbook.add_worksheet("Results")
        for col, name in enumerate(columns):
            sheet.write_string(0, col, name, cells.header)
    workbook.close()
    return written
