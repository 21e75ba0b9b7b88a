"""A table upload (CSV, TSV, semicolon, XLSX, ODS) turned into the one-value-per-line file
that the parse reads unchanged: data row ``i`` becomes line ``i`` (so ``seq == i``), a blank
cell a blank line (no record, but the row is still there in the original).

The conversion reads the file once, front to back; only the first :data:`SAMPLE_ROWS` rows
are held (to choose the column), then each row is written as it is read.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ParseError
from ..upload import MAX_LINE_BYTES
from . import detect, read, sniff
from .cells import clean_value
from .detect import HeaderMode

SAMPLE_ROWS = 200
MAX_COLUMNS = 1000
MAX_HEADER_NAME = 255


@dataclass(frozen=True)
class TableRequest:
    """The ``column`` / ``header`` extension fields of an upload (docs/input.md)."""

    column: str
    header: HeaderMode = "auto"


@dataclass
class Converted:
    """What :func:`convert` found: the format and the ``source_options`` to store."""

    format: sniff.SourceFormat
    options: dict[str, Any] = field(default_factory=dict)
    values: int = 0  # non-blank values written
    size: int = 0  # bytes of the derived file, once written


def open_rows(
    path: Path, fmt: str, options: dict[str, Any], sheet: list[str] | None = None
) -> Iterator[list[str]]:
    """Every raw row of a stored original (header included), as ``options`` say to read it
    (a workbook's sheet name is appended to ``sheet``)."""
    if fmt == "csv":
        return read.csv_rows(path, options["delimiter"], options.get("skip_lines", 0))
    return read.workbook_rows(path, fmt, sheet)


def convert(
    original: Path, derived: Path, request: TableRequest, record_type: str, filename: str | None
) -> Converted:
    """Write ``derived`` from ``original``; raise :class:`ParseError` (nothing written is
    kept: the caller removes ``derived``) when the file cannot be used."""
    fmt = sniff.detect_format(original, filename)
    options: dict[str, Any] = {}
    if fmt == "csv":
        sample = sniff.read_sample(original)
        declared = sniff.separator_line(sample)
        options["bom"] = original.open("rb").read(3) == b"\xef\xbb\xbf"
        options["delimiter"] = declared or sniff.sniff_delimiter(sample)
        options["skip_lines"] = 1 if declared else 0
        options["encoding"] = "utf-8"
    sheet: list[str] = []
    rows = open_rows(original, fmt, options, sheet)
    head = list(itertools.islice(rows, SAMPLE_ROWS))
    for number, row in enumerate(head, start=1):
        if len(row) > MAX_COLUMNS:
            raise ParseError(f"Row {number} of the file has more than {MAX_COLUMNS} columns.")
    choice = detect.choose(head, request.column, request.header, record_type)
    header = [
        clean_value(name)[:MAX_HEADER_NAME] for name in (head[0] if choice.has_header else [])
    ]
    data = itertools.chain(head[1:] if choice.has_header else head, rows)
    converted = Converted(fmt, options)
    width = max(len(header), choice.index + 1)
    count = 0
    column_name = header[choice.index] if choice.index < len(header) else f"{choice.index + 1}"
    with derived.open("w", encoding="utf-8", newline="\n", buffering=1 << 20) as out:
        write = out.write
        for row in data:
            count += 1
            if len(row) > width:
                width = len(row)
                if width > MAX_COLUMNS:
                    raise ParseError(f"Data row {count} has more than {MAX_COLUMNS} columns.")
            value = clean_value(row[choice.index]) if choice.index < len(row) else ""
            if value:
                if len(value) > MAX_LINE_BYTES // 4 and len(value.encode()) > MAX_LINE_BYTES:
                    raise ParseError(
                        f"Data row {count}: the value of column {column_name!r} is longer than "
                        f"{MAX_LINE_BYTES} bytes."
                    )
                converted.values += 1
            write(value + "\n")
    if count == 0:
        raise ParseError("The file has a header row but no data rows.")
    if converted.values == 0:
        raise ParseError(f"Column {column_name!r} has no values.")
    if fmt != "csv":
        options["sheet"] = sheet[0] if sheet else None
    options.update(
        has_header=choice.has_header,
        header=header,
        column=choice.index,
        width=width,
        rows=count,
    )
    return converted
