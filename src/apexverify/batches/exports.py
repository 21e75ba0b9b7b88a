"""Export of a finished batch as JSON (streamed) or XLSX (written to a temporary file): the
one export use case of the API and the dashboard. The rows are read in their own read
transaction, paged over the (batch, seq) key, because a download outlives its request's
unit of work."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from ..errors import NotExportable, StorageFull
from ..export.json_export import stream_json
from ..export.xlsx_export import write_xlsx
from ..storage import exports_dir
from ..storage.tempfiles import OwnedFile, create_owned, is_disk_full, temp_name
from ..store.models import Batch, iso
from . import states
from .context import Services
from .repository import records
from .service import get_batch
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


def json_chunks(
    services: Services, batch: Batch, *, details: bool, include_statistics: bool
) -> Iterator[bytes]:
    with services.store.read() as session:
        rows = records.iter_export_json(session, batch.pk, unique_values=True)
        yield from stream_json(
            batch.record_type,
            rows,
            details=details,
            statistics=statistics(batch) if include_statistics else None,
        )


def xlsx_file(services: Services, batch: Batch) -> OwnedFile:
    """The workbook in a locked temporary file of the exports folder: written as ``.part``,
    renamed ``.xlsx`` once complete, so a partial one is always recognisable (and swept at
    start, ``storage/tempfiles.py``). The caller discards it once sent. A full disk is
    :class:`StorageFull` (507) and leaves nothing behind."""
    folder = exports_dir(services.settings)
    stem = f"{batch.uuid}-{secrets.token_hex(6)}"
    try:
        owned = create_owned(folder, temp_name(stem))
        try:
            _write_workbook(services, batch, owned.path)
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


def _write_workbook(services: Services, batch: Batch, path: Path) -> None:
    summary = _summary_rows(batch)
    with services.store.read() as session:
        rows = records.iter_export_rows(session, batch.pk, unique_values=False)
        write_xlsx(path, batch.record_type, summary, rows)


def _summary_rows(batch: Batch) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [
        ("Batch", batch.name),
        ("Batch UUID", batch.uuid),
        ("Type", batch.record_type),
        ("Target country", batch.target_country),
        ("Created at", iso(batch.created_at)),
        ("Finished at", iso(batch.finished_at)),
    ]
    rows += list(found_content(batch).items()) + list(found_cost(batch).items())
    rows += list((batch.stats or {}).items())
    return rows
