"""Uploads in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2...) through boto3.

Credentials come from boto3's usual chain (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``,
a profile, an instance role) and are never logged or stored by ApexVerify.
``APEXVERIFY_S3_ENDPOINT_URL`` points at a non-AWS service.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from ..settings import Settings
from . import UploadStorage

_MISSING = ("404", "NoSuchKey", "NotFound")


class S3Storage(UploadStorage):
    def __init__(self, settings: Settings) -> None:
        import boto3  # optional dependency: pip install 'apexverify[s3]'

        parts = urlsplit(settings.storage_url)
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.client = boto3.client("s3", endpoint_url=settings.s3_endpoint_url or None)
        # Files downloaded on this machine, by key; uploads never change once stored.
        self.cache = settings.data_dir / "s3-cache"

    def _key(self, name: str) -> str:
        return f"{self.prefix}/uploads/{name}" if self.prefix else f"uploads/{name}"

    def _split(self, locator: str) -> tuple[str, str]:
        parts = urlsplit(locator)
        return parts.netloc, parts.path.lstrip("/")

    def put(self, local: Path, name: str) -> str:
        key = self._key(name)
        self.client.upload_file(str(local), self.bucket, key)  # multipart when large
        cached = self.cache / key
        cached.parent.mkdir(parents=True, exist_ok=True)
        local.replace(cached)  # this machine reads it back without a download
        return f"s3://{self.bucket}/{key}"

    def local_path(self, locator: str) -> Path:
        bucket, key = self._split(locator)
        cached = self.cache / key
        if cached.exists():
            return cached
        cached.parent.mkdir(parents=True, exist_ok=True)
        # Download beside the target, then rename: a concurrent reader never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=cached.parent, suffix=".part")
        os.close(fd)
        try:
            self.client.download_file(bucket, key, tmp)
            os.replace(tmp, cached)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return cached

    def exists(self, locator: str) -> bool:
        from botocore.exceptions import ClientError

        bucket, key = self._split(locator)
        try:
            self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return False
            raise
        return True

    def delete(self, locator: str) -> None:
        bucket, key = self._split(locator)
        self.client.delete_object(Bucket=bucket, Key=key)
        (self.cache / key).unlink(missing_ok=True)
