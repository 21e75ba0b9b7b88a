"""The original rows of a batch, for the output side (results merged back into the file).

Both functions work for every batch: a plain one-entry-per-line upload (``source_format``
is ``None``) reads as a one-column table whose header is the record type.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ...storage import UploadStorage
from ...store.models import Batch
from .convert import open_rows


def source_header(batch: Batch) -> list[str]:
    """The original header names, padded with ``Column N`` to the widest row (all
    ``Column 1..N`` when the file had no header row); ``[batch.record_type]`` for a plain
    upload."""
    options = batch.source_options
    if batch.source_format is None or options is None:
        return [batch.record_type]
    names: list[str] = list(options.get("header") or [])
    width = int(options.get("width", len(names)))
    return names + [f"Column {n}" for n in range(len(names) + 1, width + 1)]


def iter_source_rows(storage: UploadStorage, batch: Batch) -> Iterator[list[str]]:
    """The original data rows in file order, as cell texts padded to the header's width: the
    ``i``-th row is the one whose value has ``seq == i``. CSV, plain files and workbooks are
    streamed. A plain upload yields ``[line]`` for every
    line, blank ones included (without its line end)."""
    if batch.source_format is None or batch.source_options is None or not batch.source_path:
        yield from _plain_rows(storage, batch.file_path)
        return
    options: dict[str, Any] = batch.source_options
    path = storage.local_path(batch.source_path)
    rows = open_rows(path, batch.source_format, options)
    if options.get("has_header"):
        next(rows, None)
    width = int(options.get("width", 1))
    count = int(options.get("rows", -1))
    for seen, row in enumerate(rows):
        if seen == count:  # never more rows than the parse numbered
            return
        yield row + [""] * (width - len(row)) if len(row) < width else row


def _plain_rows(storage: UploadStorage, locator: str) -> Iterator[list[str]]:
    # Binary, so that only "\n" ends a line, as for the parse (``parsing.read_range``).
    with storage.local_path(locator).open("rb") as handle:
        for raw in handle:
            line = raw[:-1] if raw.endswith(b"\n") else raw
            if line.endswith(b"\r"):
                line = line[:-1]
            yield [line.decode("utf-8", "replace")]


def source_summary(batch: Batch) -> dict[str, Any] | None:
    """What the dashboard may show of a table upload (``None`` for a plain one): format,
    delimiter, whether it had a header, the chosen column's name and number, data rows."""
    options = batch.source_options
    if batch.source_format is None or options is None:
        return None
    header = source_header(batch)
    index = int(options.get("column", 0))
    return {
        "format": batch.source_format,
        "delimiter": options.get("delimiter"),
        "sheet": options.get("sheet"),
        "has_header": bool(options.get("has_header")),
        "column": header[index] if index < len(header) else f"Column {index + 1}",
        "column_number": index + 1,
        "rows": options.get("rows"),
    }
