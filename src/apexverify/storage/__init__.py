"""Where uploaded files live, so that a worker on another machine can read them.

A file's *locator* (stored in ``batches.file_path``) is either an absolute path in the upload
directory (the default: local disk, or a directory every machine mounts) or
``s3://bucket/key`` in an S3-compatible bucket (``APEXVERIFY_STORAGE_URL``). Readers always
get a local path: the S3 backend downloads a file once per machine into a cache directory.
Exports are not stored: each is written on request by the API process that serves it, into
:func:`exports_dir`, and removed once sent. Temporary files (an upload being copied, an export
being written or sent) follow :mod:`.tempfiles`, and :func:`sweep_leftovers` removes those a
killed process left.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from ..settings import Settings
from . import tempfiles


class UploadStorage(ABC):
    @abstractmethod
    def put(self, local: Path, name: str) -> str:
        """Keep the validated upload at ``local`` under ``name``; returns its locator."""

    @abstractmethod
    def local_path(self, locator: str) -> Path:
        """A path on this machine to read the file from."""

    @abstractmethod
    def exists(self, locator: str) -> bool: ...

    @abstractmethod
    def delete(self, locator: str) -> None: ...


class LocalStorage(UploadStorage):
    """Files stay where the upload wrote them (``<storage_dir or data_dir>/uploads``)."""

    def put(self, local: Path, name: str) -> str:
        return str(local)

    def local_path(self, locator: str) -> Path:
        return Path(locator)

    def exists(self, locator: str) -> bool:
        return Path(locator).exists()

    def delete(self, locator: str) -> None:
        Path(locator).unlink(missing_ok=True)


def make_storage(settings: Settings) -> UploadStorage:
    if settings.storage_url.startswith("s3://"):
        from .s3 import S3Storage

        return S3Storage(settings)
    if settings.storage_url:
        raise ValueError("APEXVERIFY_STORAGE_URL must be empty or s3://bucket[/prefix]")
    return LocalStorage()


def exports_dir(settings: Settings) -> Path:
    """Where XLSX exports are written before they are sent (and removed)."""
    return (settings.storage_dir or settings.data_dir) / "exports"


def sweep_leftovers(settings: Settings) -> list[Path]:
    """Remove the temporary files that killed processes left in the upload and export
    folders; which ones are safe to remove is decided in :mod:`.tempfiles`."""
    return [
        *tempfiles.sweep(settings.uploads_dir, (tempfiles.PART,)),
        *tempfiles.sweep(exports_dir(settings), (tempfiles.PART, ".xlsx")),
    ]
