"""Export of a finished batch as JSON (streamed), CSV (streamed) or XLSX (written to a
temporary file): the one export use case of the API and the dashboard. The rows are read in
their own read transaction, paged over the (batch, seq) key, because a download outlives its
request's unit of work.

Two extensions (``docs/export.md``): a :class:`ResultFilter` (the API's ``keep``, the
dashboard's filtered table) keeps only the matching rows in every format, and ``merge`` writes
the customer's original file (``sources``) with the result columns appended
(``export/merged.py``). Without them, the JSON and XLSX are exactly the documented layouts and
take the same unfiltered paths as before.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.orm import Session

from ..errors import NotExportable, StorageFull
from ..export.columns import KNOWN_EXTRA_COLUMNS, OVERFLOW_COLUMN, documented_columns
from ..export.csv_export import stream_csv
from ..export.decisions import decision
from ..export.filters import ResultFilter
from ..export.json_export import stream_json, stream_json_pages
from ..export.merged import merge_rows, merged_header
from ..export.xlsx_export import write_table, write_xlsx
from ..storage import exports_dir
from ..storage.tempfiles import OwnedFile, create_owned, is_disk_full, temp_name
from ..store.models import Batch
from . import states
from .context import Services
from .export_summary import summary_rows
from .repository import export_json, records
from .service import get_batch
from .sources import iter_source_rows, source_header
from .views import found_content, found_cost

_EXPORT_DISK_FULL = (
    "The server's storage is full; the export could not be written. Nothing was changed."
)


def exportable(session: Session, account_id: str, batch_uuid: str) -> Batch:
    batch = get_batch(session, account_id, batch_uuid)
    if batch.status != states.DONE:
        raise NotExportable(
            f"The batch is {batch.status}; export is available once it is verification_done."
        )
    return batch


def statistics(batch: Batch) -> dict[str, Any]:
    return {
        "batch_uuid": batch.uuid,
        "name": batch.name,
        "found_content": found_content(batch),
        "found_cost": found_cost(batch),
        "stats": batch.stats or {},
    }


def check_mergeable(services: Services, batch: Batch) -> None:
    """Before a merged download starts (a streamed one cannot turn into an error later): the
    original file must still be stored."""
    locator = batch.source_path or batch.file_path
    if not locator or not services.storage.exists(locator):
        raise NotExportable(
            "The original file of this batch is no longer stored, so the results cannot be "
            "merged back into it; export with merge=false."
        )


def _active(result_filter: ResultFilter | None) -> ResultFilter | None:
    return None if result_filter is None or result_filter.empty else result_filter


def _filtered(
    record_type: str,
    rows: Iterable[tuple[str, str | None]],
    result_filter: ResultFilter,
) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """The export rows a filter keeps, results decoded (the filter reads them)."""
    matches = result_filter.matches
    for value, raw in rows:
        result = None if raw is None else orjson.loads(raw)
        if matches(record_type, value, result):
            yield value, result


def json_chunks(
    services: Services,
    batch: Batch,
    *,
    details: bool,
    include_statistics: bool,
    result_filter: ResultFilter | None = None,
) -> Iterator[bytes]:
    """The documented JSON export; with a filter, the same layout holding only the values
    whose result matches (``_statistics`` still describes the whole batch)."""
    active = _active(result_filter)
    stats = statistics(batch) if include_statistics else None
    with services.store.read() as session:
        if active is None:
            # The documented export: pages straight from the database cursor, each spliced
            # into one piece (``repository/export_json.py``).
            pages = export_json.iter_export_pages(session, batch.pk, unique_values=True)
            yield from stream_json_pages(
                batch.record_type, pages, details=details, statistics=stats
            )
            return
        rows = records.iter_export_json(session, batch.pk, unique_values=True)
        kept = _filtered(batch.record_type, rows, active)
        yield from stream_json(batch.record_type, kept, details=details, statistics=stats)


def xlsx_file(
    services: Services,
    batch: Batch,
    *,
    merge: bool = False,
    result_filter: ResultFilter | None = None,
) -> OwnedFile:
    """The workbook in a locked temporary file of the exports folder: written as ``.part``,
    renamed ``.xlsx`` once complete, so a partial one is always recognisable (and swept at
    start, ``storage/tempfiles.py``). The caller discards it once sent. A full disk is
    :class:`StorageFull` (507) and leaves nothing behind."""
    folder = exports_dir(services.settings)
    stem = f"{batch.uuid}-{secrets.token_hex(6)}"
    try:
        owned = create_owned(folder, temp_name(stem))
        try:
            _write_workbook(services, batch, owned.path, merge, _active(result_filter))
            owned.rename(folder / temp_name(stem, ".xlsx"))
        except BaseException:
            owned.discard()
            raise
    except Exception as exc:
        # XlsxWriter wraps some OS errors in its own exceptions; the cause chain tells.
        if is_disk_full(exc):
            raise StorageFull(_EXPORT_DISK_FULL) from exc
        raise
    return owned


def _write_workbook(
    services: Services,
    batch: Batch,
    path: Path,
    merge: bool,
    result_filter: ResultFilter | None,
) -> None:
    # The Summary's chart figures are a grouped scan of the batch's results (about as long
    # as a quarter of the rows' first pass): run in its own read transaction on another
    # thread while the rows are spooled (the database driver releases the GIL), and taken
    # when the workbook is written, so the unfiltered export is not slower for them.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-summary") as pool:
        summary = pool.submit(_summary, services, batch).result
        with services.store.read() as session:
            if merge:
                header = source_header(batch)
                merged = _merged_rows(services, session, batch, len(header), result_filter)
                write_table(path, merged_header(header, batch.record_type), summary, merged)
                return
            if result_filter is None:
                rows: Iterable[Any] = records.iter_export_rows(
                    session, batch.pk, unique_values=False
                )
            else:
                raw = records.iter_export_json(session, batch.pk, unique_values=False)
                rows = _filtered(batch.record_type, raw, result_filter)
            write_xlsx(path, batch.record_type, summary, rows)


def _summary(services: Services, batch: Batch) -> list[tuple[str, Any]]:
    with services.store.read() as session:
        return summary_rows(session, batch)


def _merged_rows(
    services: Services,
    session: Session,
    batch: Batch,
    width: int,
    result_filter: ResultFilter | None,
) -> Iterator[list[Any]]:
    """The original rows joined with every record's result, both streamed in file order."""
    return merge_rows(
        batch.record_type,
        width,
        iter_source_rows(services.storage, batch),
        records.iter_merge_results(session, batch.pk),
        result_filter=result_filter,
    )


def csv_chunks(
    services: Services,
    batch: Batch,
    *,
    merge: bool = True,
    result_filter: ResultFilter | None = None,
) -> Iterator[bytes]:
    """The CSV export (ours, ``docs/export.md``), streamed: by default the original file
    with the result columns appended; ``merge=False`` one row per record as in the XLSX
    Results sheet (identity, decision, every result field, the extras, ``extra``)."""
    active = _active(result_filter)
    record_type = batch.record_type
    with services.store.read() as session:
        if merge:
            header = source_header(batch)
            rows = _merged_rows(services, session, batch, len(header), active)
            yield from stream_csv(
                merged_header(header, record_type), rows, trusted_columns=len(header)
            )
            return
        raw = records.iter_export_json(session, batch.pk, unique_values=False)
        columns = _record_columns(record_type)
        yield from stream_csv(
            columns, _record_cells(record_type, columns, raw, active), trusted_columns=1
        )


def _record_columns(record_type: str) -> list[str]:
    documented = documented_columns(record_type)
    return [
        documented[0],
        "decision",
        *documented[1:],
        *KNOWN_EXTRA_COLUMNS.get(record_type, ()),
        OVERFLOW_COLUMN,
    ]


def _record_cells(
    record_type: str,
    columns: list[str],
    rows: Iterable[tuple[str, str | None]],
    result_filter: ResultFilter | None,
) -> Iterator[list[Any]]:
    keys = columns[2:-1]
    named = frozenset(columns)
    empty: Mapping[str, Any] = {}
    for value, raw in rows:
        result = None if raw is None else orjson.loads(raw)
        if result_filter is not None and not result_filter.matches(record_type, value, result):
            continue
        data = result or empty
        others = {k: v for k, v in data.items() if k not in named}
        yield [value, decision(record_type, result), *map(data.get, keys), others or None]
