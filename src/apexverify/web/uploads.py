"""The upload use case of both edges: the request body capped as it streams, the file copied
to storage while it is validated, chunk by chunk, then the batch registered in the caller's
unit of work.

Why the body is capped at the ASGI ``receive``: Starlette's multipart parser spools every file
part over 1 MiB to a temporary file before the endpoint runs, so a limit checked in the
endpoint comes after the whole body is on disk. :func:`capped_receive` counts the bytes before
the parser sees them, and stops at the upload limit plus the envelope.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session
from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import Message, Receive

from ..batches import service
from ..batches.context import Services
from ..batches.params import BatchParameters
from ..batches.sources import Converted, TableRequest, convert
from ..batches.upload import TableUploadValidator, UploadValidator
from ..errors import ParseError, StorageFull
from ..settings import Settings
from ..storage.tempfiles import create_owned, is_disk_full, temp_name
from ..store.models import Batch

CHUNK = 1024 * 1024
# Room for the multipart envelope and the form fields around the file itself.
MULTIPART_OVERHEAD = 64 * 1024


def too_large_message(max_upload_bytes: int) -> str:
    return f"The file is larger than {max_upload_bytes} bytes."


class BodyTooLarge(HTTPException):
    """An upload's body past its limit. An HTTP exception, because FastAPI's body parsing
    passes those on unchanged (any other error there becomes a 400); ``Connection: close``
    so that the server stops reading the rest instead of draining it."""

    def __init__(self, max_upload_bytes: int) -> None:
        super().__init__(413, too_large_message(max_upload_bytes), headers={"Connection": "close"})


def body_limit(settings: Settings, headers: Headers) -> int:
    """The most bytes an upload request's body may have. Only a multipart body carries a
    file; any other gets the envelope's room alone (it is refused as invalid anyway)."""
    content_type = headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        return settings.max_upload_bytes + MULTIPART_OVERHEAD
    return MULTIPART_OVERHEAD


def declared_too_large(settings: Settings, headers: Headers) -> bool:
    """Whether the body's declared length alone is over the limit (refused unread)."""
    length = headers.get("content-length", "")
    return length.isdigit() and int(length) > body_limit(settings, headers)


def capped_receive(receive: Receive, settings: Settings, headers: Headers) -> Receive:
    """``receive``, raising :class:`BodyTooLarge` as soon as the body passes its limit (or at
    once, when its declared length does), before the bytes reach any parser."""
    limit = body_limit(settings, headers)
    declared = declared_too_large(settings, headers)
    received = 0

    async def counted() -> Message:
        nonlocal received
        if declared:
            raise BodyTooLarge(settings.max_upload_bytes)
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(settings.max_upload_bytes)
        return message

    return counted


def capped_request(request: Request) -> Request:
    """The same request with its body capped as an upload's, for an endpoint that reads its
    form itself (the dashboard's upload)."""
    settings: Settings = request.app.state.services.settings
    return Request(request.scope, capped_receive(request.receive, settings, request.headers))


async def receive_upload(
    file: UploadFile,
    dest: Path,
    record_type: str,
    max_bytes: int,
    validator: UploadValidator | TableUploadValidator | None = None,
) -> int:
    """Write ``file`` to ``dest`` through a locked temporary file beside it
    (``storage/tempfiles.py``). On any failure (invalid content, a full disk, cancellation)
    the temporary file is removed; a full disk or quota is :class:`StorageFull`. The content
    is checked as one entry per line unless another ``validator`` is given."""
    validator = validator or UploadValidator(record_type, max_bytes)
    try:
        part = await asyncio.to_thread(create_owned, dest.parent, temp_name(dest.name))
    except OSError as exc:
        if is_disk_full(exc):
            raise StorageFull() from exc
        raise
    try:
        while chunk := await file.read(CHUNK):
            validator.feed(chunk)
            await asyncio.to_thread(part.file.write, chunk)
        validator.finish()
        await asyncio.to_thread(part.file.flush)  # a full disk shows here at the latest
        part.rename(dest)
        part.release()
    except BaseException as exc:
        part.discard()  # the temporary file, or ``dest`` if the failure came after the rename
        if is_disk_full(exc):
            raise StorageFull() from exc
        raise
    return validator.size


async def accept_upload(
    services: Services,
    session: Session,
    account_id: str,
    file: UploadFile,
    *,
    name: str,
    description: str | None,
    params: BatchParameters,
    table: TableRequest | None = None,
) -> Batch:
    """Validate and store the file, then create the batch (parsing starts on commit).

    With ``table`` (the ``column`` extension, docs/input.md) the file is a CSV/TSV/XLSX/ODS
    table: it is kept as the batch's original and converted to the one-value-per-line file
    the parse reads."""
    batch_uuid = service.new_batch_uuid()
    path = service.upload_path(services, batch_uuid)
    if table is not None:
        new = _NewBatch(services, session, account_id, batch_uuid, name, description, params)
        return await _accept_table(new, file, path, table)
    size = await receive_upload(file, path, params.type, services.settings.max_upload_bytes)
    new = _NewBatch(services, session, account_id, batch_uuid, name, description, params)
    try:
        return await new.register(path, size)
    except BaseException as exc:
        # Not registered: the stored copy would be an orphan (a stored one is removed by the
        # batch's rollback hook).
        path.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise StorageFull() from exc
        raise


@dataclass(frozen=True)
class _NewBatch:
    """What registers an accepted upload as a batch, whichever way its file was stored."""

    services: Services
    session: Session
    account_id: str
    batch_uuid: str
    name: str
    description: str | None
    params: BatchParameters

    async def register(
        self, path: Path, size: int, source: service.TableSource | None = None
    ) -> Batch:
        return await asyncio.to_thread(
            service.create_batch,
            self.services,
            self.session,
            self.account_id,
            batch_uuid=self.batch_uuid,
            name=self.name,
            description=self.description,
            params=self.params,
            file_path=path,
            file_size=size,
            source=source,
        )


async def _accept_table(new: _NewBatch, file: UploadFile, path: Path, table: TableRequest) -> Batch:
    services, params = new.services, new.params
    # Measured (docs/benchmarks.md, bench/table_input.py): converting 1,000,000 CSV rows takes
    # about 1.5 s, less than receiving them, so it runs here, in a thread: a file that cannot
    # be used is a 400 before any batch exists, and the parse stays the plain one.
    limit = services.settings.max_upload_bytes
    received = path.with_name(f"{new.batch_uuid}.source")
    await receive_upload(file, received, params.type, limit, TableUploadValidator(limit))
    original = received
    try:
        converted = await asyncio.to_thread(
            _convert, received, path, table, params.type, file.filename
        )
        original = received.with_name(f"{received.name}.{converted.format}")
        await asyncio.to_thread(received.rename, original)
        source = service.TableSource(converted.format, original, converted.options)
        return await new.register(path, converted.size, source)
    except BaseException as exc:
        _discard(path, received, original)  # nothing half-stored
        if is_disk_full(exc):
            raise StorageFull() from exc
        raise


def _convert(
    original: Path, derived: Path, table: TableRequest, record_type: str, filename: str | None
) -> Converted:
    """The derived file written through a locked temporary file, renamed when complete."""
    part = create_owned(derived.parent, temp_name(derived.name))
    try:  # ``part`` stays open, so locked, while convert writes the same file by its path
        converted = convert(original, part.path, table, record_type, filename)
        part.rename(derived)
        part.release()
        converted.size = derived.stat().st_size
    except RecursionError as exc:  # pathological nesting in a workbook's XML
        part.discard()
        raise ParseError("The workbook is too deeply nested to read.") from exc
    except BaseException:
        part.discard()
        raise
    return converted


def _discard(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
