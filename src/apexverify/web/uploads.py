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
from pathlib import Path

from sqlalchemy.orm import Session
from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import Message, Receive

from ..batches import service
from ..batches.context import Services
from ..batches.params import BatchParameters
from ..batches.upload import UploadValidator
from ..errors import StorageFull
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


async def receive_upload(file: UploadFile, dest: Path, record_type: str, max_bytes: int) -> int:
    """Write ``file`` to ``dest`` through a locked temporary file beside it
    (``storage/tempfiles.py``). On any failure (invalid content, a full disk, cancellation)
    the temporary file is removed; a full disk or quota is :class:`StorageFull`."""
    validator = UploadValidator(record_type, max_bytes)
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
) -> Batch:
    """Validate and store the file, then create the batch (parsing starts on commit)."""
    batch_uuid = service.new_batch_uuid()
    path = service.upload_path(services, batch_uuid)
    size = await receive_upload(file, path, params.type, services.settings.max_upload_bytes)
    try:
        return await asyncio.to_thread(
            service.create_batch,
            services,
            session,
            account_id,
            batch_uuid=batch_uuid,
            name=name,
            description=description,
            params=params,
            file_path=path,
            file_size=size,
        )
    except BaseException as exc:
        # Not registered: the stored copy would be an orphan (a stored one is removed by the
        # batch's rollback hook).
        path.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise StorageFull() from exc
        raise
