"""Table uploads (the ``column`` extension of ``POST /v1/batch``) and the original rows of a
batch, for merging results back. docs/input.md describes the formats and the fields.

The interface for the output side (``rows.py``)::

    source_header(batch: Batch) -> list[str]
        The original header names, padded with ``Column N`` to the widest row (``Column
        1..N`` when the file had no header row). A plain upload: ``[batch.record_type]``.

    iter_source_rows(storage: UploadStorage, batch: Batch) -> Iterator[list[str]]
        The original data rows in file order as lists of cell texts, each padded to
        ``len(source_header(batch))``: the i-th yielded row is the row whose value has
        ``seq == i`` in ``records`` (a row whose cell was blank has no record). Pass
        ``services.storage`` (``batches/context.Services``); the batch only needs its columns
        loaded (``source_format``, ``source_path``, ``source_options``, ``file_path``), so a
        detached ``Batch`` works. CSV, plain files and XLSX/ODS (``xlsx_stream``,
        ``ods_stream``, in a child process) stream in constant memory.
        A plain upload (``source_format is None``) yields ``[line]`` for every line, blank
        lines included, so the output side has one code path.

``Batch.source_format`` is ``None`` | ``"csv"`` | ``"xlsx"`` | ``"ods"`` (a TSV or semicolon
file is ``csv`` with its delimiter in ``source_options``); ``source_summary(batch)`` gives
the dashboard what it may show.

Uploading (``web/uploads.accept_upload`` with a :class:`TableRequest`): the original streams
to disk under the upload limit (``upload.TableUploadValidator``), then :func:`convert` writes
the derived one-value-per-line file (``Batch.file_path``) that the parse reads unchanged.
"""

from __future__ import annotations

from .convert import Converted, TableRequest, convert
from .detect import HeaderMode
from .rows import iter_source_rows, source_header, source_summary
from .sniff import SourceFormat

__all__ = [
    "Converted",
    "HeaderMode",
    "SourceFormat",
    "TableRequest",
    "convert",
    "iter_source_rows",
    "source_header",
    "source_summary",
]
