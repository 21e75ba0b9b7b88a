"""The export download response, shared by ``GET /v1/batch/{uuid}/export`` and the
dashboard's export buttons."""

from __future__ import annotations

from typing import Literal

from fastapi.responses import FileResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from ..batches import exports
from ..batches.context import Services
from ..storage.tempfiles import OwnedFile
from ..store.models import Batch

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ExportFormat = Literal["json", "xlsx"]


class TemporaryFileResponse(FileResponse):
    """Sends an export's temporary file, then removes it, however the sending ends: a
    background task would not run when the client goes away mid-download."""

    def __init__(self, owned: OwnedFile, *, media_type: str, filename: str) -> None:
        super().__init__(owned.path, media_type=media_type, filename=filename)
        self.owned = owned

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.owned.discard()


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
    return TemporaryFileResponse(
        exports.xlsx_file(services, batch), media_type=XLSX_TYPE, filename=filename
    )
