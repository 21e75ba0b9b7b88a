"""Copy an uploaded file to storage while validating it, chunk by chunk."""

from __future__ import annotations

import asyncio
from pathlib import Path

from starlette.datastructures import UploadFile

from ..batches.upload import UploadValidator

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
