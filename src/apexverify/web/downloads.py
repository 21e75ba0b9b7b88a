"""The export download response, shared by ``GET /v1/batch/{uuid}/export`` and the
dashboard's export buttons."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import quote

from fastapi.responses import FileResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from ..batches import exports
from ..batches.context import Services
from ..export.decisions import DECISIONS, Decision
from ..export.filters import ResultFilter
from ..storage.tempfiles import OwnedFile
from ..store.models import Batch

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_TYPE = "text/csv; charset=utf-8"
ExportFormat = Literal["json", "xlsx", "csv"]
# What a file name keeps of a batch name: letters, digits and a few safe marks.
_UNSAFE = re.compile(r"[^\w.\- ]+")


class TemporaryFileResponse(FileResponse):
    """Sends an export's temporary file, then removes it, however the sending ends: a
    background task would not run when the client goes away mid-download."""

    def __init__(
        self,
        owned: OwnedFile,
        *,
        media_type: str,
        filename: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(owned.path, media_type=media_type, filename=filename, headers=headers)
        self.owned = owned

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.owned.discard()


def download_name(batch: Batch, format: ExportFormat, keep: frozenset[Decision] | None) -> str:
    """``<batch name or uuid>[-<keep>].<format>`` (keep in the table's order, joined by
    ``-``): the name of an extension download (a merged file or a filtered one)."""
    stem = _UNSAFE.sub("_", batch.name or "").strip(" ._") or batch.uuid
    if keep:
        stem += "-" + "-".join(name for name in DECISIONS if name in keep)
    return f"{stem[:120]}.{format}"


def _disposition(filename: str) -> str:
    """An attachment header that survives any name: an ASCII fallback plus RFC 5987's
    UTF-8 ``filename*``."""
    fallback = filename.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"


def _with_keep(result_filter: ResultFilter | None, keep: frozenset[Decision]) -> ResultFilter:
    """``keep`` and a table filter together: both must hold, so the decisions intersect (an
    empty intersection keeps no row: a decision no result has stands for it)."""
    base = result_filter or ResultFilter()
    decisions = keep & base.decisions if base.decisions else keep
    return ResultFilter(
        decisions=decisions or frozenset({"none"}),  # type: ignore[arg-type]
        verdicts=base.verdicts,
        qualities=base.qualities,
        flags=base.flags,
        search=base.search,
    )


def export_response(
    services: Services,
    batch: Batch,
    format: ExportFormat,
    *,
    details: bool = True,
    statistics: bool = True,
    keep: frozenset[Decision] | None = None,
    merge: bool | None = None,
    result_filter: ResultFilter | None = None,
) -> StreamingResponse | FileResponse:
    """JSON keyed by the original value (streamed), an XLSX workbook (a temporary file
    removed once sent) or a CSV (streamed).

    Extensions (``docs/export.md``): ``keep`` (decisions) and/or ``result_filter`` (the
    dashboard's table filter; both apply when both are given) keep only the matching rows;
    ``merge`` writes the original file with the result columns appended (CSV: on unless
    ``merge=False``; XLSX: off unless ``merge=True``; JSON: ignored). Without them the
    response is the documented one, under its usual file name."""
    if keep:
        result_filter = _with_keep(result_filter, keep)
    merged = format != "json" and (merge if merge is not None else format == "csv")
    extended = format == "csv" or bool(keep) or merged or result_filter is not None
    filename = (
        download_name(batch, format, keep) if extended else f"apexverify-{batch.uuid}.{format}"
    )
    if merged:
        exports.check_mergeable(services, batch)
    headers = {"Content-Disposition": _disposition(filename)}
    if format == "json":
        if not extended:
            headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
        return StreamingResponse(
            exports.json_chunks(
                services,
                batch,
                details=details,
                include_statistics=statistics,
                result_filter=result_filter,
            ),
            media_type="application/json",
            headers=headers,
        )
    if format == "csv":
        return StreamingResponse(
            exports.csv_chunks(services, batch, merge=merged, result_filter=result_filter),
            media_type=CSV_TYPE,
            headers=headers,
        )
    owned = exports.xlsx_file(services, batch, merge=merged, result_filter=result_filter)
    if not extended:
        return TemporaryFileResponse(owned, media_type=XLSX_TYPE, filename=filename)
    return TemporaryFileResponse(owned, media_type=XLSX_TYPE, headers=headers)
