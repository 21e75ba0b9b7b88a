"""The export download response, shared by ``GET /v1/batch/{uuid}/export`` and the
dashboard's export buttons."""

from __future__ import annotations

from typing import Literal

from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask

from ..batches import exports
from ..batches.context import Services
from ..store.models import Batch

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ExportFormat = Literal["json", "xlsx"]


def export_response(
    services: Services,
    batch: Batch,
    format: ExportFormat,
    *,
    details: bool = True,
    statistics: bool = True,
) -> StreamingResponse | FileResponse:
    """JSON keyed by the original value (streamed) or an XLSX workbook (a temporary file
    removed once sent)."""
    filename = f"apexverify-{batch.uuid}.{format}"
    if format == "json":
        return StreamingResponse(
            exports.json_chunks(services, batch, details=details, include_statistics=statistics),
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    path = exports.xlsx_file(services, batch)
    return FileResponse(
        path,
        media_type=XLSX_TYPE,
        filename=filename,
        background=BackgroundTask(path.unlink, missing_ok=True),
    )
