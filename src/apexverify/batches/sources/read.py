"""The raw rows of a table upload, in file order, header row included: CSV streamed with the
csv module, workbooks through python-calamine (first sheet).

Limits against hostile files: a CSV field over the csv module's 128 KiB limit and a zip
whose entries inflate past :data:`MAX_INFLATED_BYTES` or more than :data:`MAX_RATIO` times
their compressed size (a zip bomb) are a :class:`ParseError` before anything is kept.
python-calamine holds the first sheet in memory while it is read (about 100 MB for 200,000
rows of five cells, docs/benchmarks.md), which is why inflated size is capped.
"""

from __future__ import annotations

import csv
import logging
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...errors import ParseError
from .cells import cell_text

log = logging.getLogger(__name__)

MAX_INFLATED_BYTES = 2 * 1024**3
MAX_RATIO = 100
# The csv module's default field limit (131,072 characters): a CSV field past it is refused.
FIELD_LIMIT = csv.field_size_limit()


def csv_rows(path: Path, delimiter: str, skip_lines: int = 0) -> Iterator[list[str]]:
    """Every row of a UTF-8 CSV (BOM or not, any line ends, quoted fields), streamed."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        for _ in range(skip_lines):
            handle.readline()
        reader = csv.reader(handle, delimiter=delimiter, quotechar='"', doublequote=True)
        try:
            yield from reader
        except csv.Error as exc:
            raise ParseError(
                f"Row {reader.line_num} of the file cannot be read as CSV ({exc}); "
                f"fields are limited to {FIELD_LIMIT} characters."
            ) from None


def check_archive(path: Path) -> None:
    """Refuse a zip that would inflate too far (declared sizes; calamine also stops at the
    real end of each stream)."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ParseError(f"The workbook is a damaged zip archive ({exc}).") from None
    total = sum(entry.file_size for entry in entries)
    if total > MAX_INFLATED_BYTES:
        raise ParseError(
            f"The workbook inflates to {total} bytes, over the limit of {MAX_INFLATED_BYTES}."
        )
    for entry in entries:
        if entry.file_size > 1024 * 1024 and entry.file_size > MAX_RATIO * max(
            entry.compress_size, 1
        ):
            raise ParseError(
                f"The workbook entry {entry.filename!r} inflates more than {MAX_RATIO} times "
                "its size: refused as a possible zip bomb."
            )


def workbook_rows(path: Path) -> Iterator[list[str]]:
    """The rows of the first sheet as cell texts (``123`` for a whole number)."""
    check_archive(path)
    import python_calamine  # imported here: only table uploads need it

    try:
        workbook = python_calamine.CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # calamine's errors have no common base (Calamine, Zip, Xml...)
        raise _unreadable(exc) from None
    with workbook:
        if not workbook.sheet_names:
            raise ParseError("The workbook has no sheet.")
        try:
            sheet = workbook.get_sheet_by_index(0)
            rows: Iterator[list[Any]] = sheet.iter_rows()
        except Exception as exc:
            raise _unreadable(exc) from None
        for row in rows:
            yield [cell_text(value) for value in row]


def first_sheet_name(path: Path) -> str | None:
    import python_calamine

    try:
        with python_calamine.CalamineWorkbook.from_path(str(path)) as workbook:
            return workbook.sheet_names[0] if workbook.sheet_names else None
    except Exception:
        return None


def _unreadable(exc: Exception) -> ParseError:
    log.info("unreadable workbook: %s: %s", type(exc).__name__, exc)
    return ParseError(f"The workbook cannot be read ({type(exc).__name__}: {str(exc)[:200]}).")
