"""Export of a finished batch as JSON (streamed) or XLSX (written to a temporary file): the
one export use case of the API and the dashboard. The rows are read in their own read
transaction, paged over the (batch, seq) key, because a download outlives its request's
unit of work."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from ..errors import NotExportable
from ..export.json_export import stream_json
from ..export.xlsx_export import write_xlsx
from ..store.models import Batch
from . import states
from .context import Services
from .repository import records
from .service import get_batch
from .views import found_content, found_cost, iso


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


def xlsx_file(services: Services, batch: Batch) -> Path:
    exports = (services.settings.storage_dir or services.settings.data_dir) / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - the response deletes it after sending
        dir=exports, prefix=f"{batch.uuid}-", suffix=".xlsx", delete=False
    )
    handle.close()
    path = Path(handle.name)
    summary = _summary_rows(batch)
    with services.store.read() as session:
        rows = records.iter_export_rows(session, batch.pk, unique_values=False)
        write_xlsx(path, batch.record_type, summary, rows)
    return path


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
