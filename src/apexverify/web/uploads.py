"""The upload use case of both edges: copy the file to storage while validating it, chunk by
chunk, then register the batch in the caller's unit of work."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from ..batches import service
from ..batches.context import Services
from ..batches.params import BatchParameters
from ..batches.upload import UploadValidator
from ..store.models import Batch

CHUNK = 1024 * 1024


async def receive_upload(file: UploadFile, dest: Path, record_type: str, max_bytes: int) -> int:
    """Write ``file`` to ``dest``; on any validation error the partial file is removed."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    validator = UploadValidator(record_type, max_bytes)
    tmp = dest.with_suffix(".part")
    try:
        with tmp.open("wb") as out:
            while chunk := await file.read(CHUNK):
                validator.feed(chunk)
                await asyncio.to_thread(out.write, chunk)
        validator.finish()
        tmp.replace(dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
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
