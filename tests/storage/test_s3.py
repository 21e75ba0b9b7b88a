"""Uploads in an S3-compatible bucket: the storage backend against a loopback S3 server, and a
live server (embedded mode) whose uploads, parses and deletes go through the bucket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from apexverify.errors import ConfigurationError
from apexverify.settings import Settings
from apexverify.storage import LocalStorage, make_storage
from apexverify.storage.s3 import S3Storage
from tests.api.helpers import Api
from tests.support.s3 import S3Server, s3_server


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


@pytest.fixture
def aws_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in s3.env().items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)


def _storage(s3: S3Server, data_dir: Path) -> S3Storage:
    settings = Settings().replace(
        data_dir=data_dir,
        storage_url=f"s3://{s3.bucket}/unit",
        s3_endpoint_url=s3.endpoint,
    )
    storage = make_storage(settings)
    assert isinstance(storage, S3Storage)
    return storage


@pytest.mark.usefixtures("aws_env")
def test_a_file_put_on_one_machine_is_read_on_another(s3: S3Server, tmp_path: Path) -> None:
    api_machine = _storage(s3, tmp_path / "api")
    worker_machine = _storage(s3, tmp_path / "worker")
    upload = tmp_path / "incoming" / "b1.txt"
    upload.parent.mkdir()
    upload.write_bytes(b"a@example.com\nb@example.com\n")

    locator = api_machine.put(upload, "b1.txt")
    assert locator == f"s3://{s3.bucket}/unit/uploads/b1.txt"
    assert "unit/uploads/b1.txt" in s3.object_keys()
    assert not upload.exists()  # moved into the API machine's cache, not copied
    assert api_machine.local_path(locator).read_bytes() == b"a@example.com\nb@example.com\n"

    fetched = worker_machine.local_path(locator)  # downloaded from the bucket
    assert fetched.is_relative_to(tmp_path / "worker")
    assert fetched.read_bytes() == b"a@example.com\nb@example.com\n"
    assert worker_machine.exists(locator)

    api_machine.delete(locator)
    assert not worker_machine.exists(locator)
    assert "unit/uploads/b1.txt" not in s3.object_keys()


def test_storage_url_must_be_s3_or_empty(tmp_path: Path) -> None:
    assert isinstance(make_storage(Settings(data_dir=tmp_path)), LocalStorage)
    # Refused when the settings are built, before any storage exists.
    with pytest.raises(ConfigurationError, match="s3://") as caught:
        Settings(data_dir=tmp_path, storage_url="ftp://x")
    assert caught.value.setting == "APEXVERIFY_STORAGE_URL"


def test_server_keeps_uploads_in_the_bucket(s3: S3Server, make_server: object) -> None:
    server = make_server(**s3.env("embedded"))  # type: ignore[operator]
    api = Api(server.base_url, server.create_account(sandbox=True)[0])
    batch_uuid = api.run("valid@example.com\ninvalid@example.com\nvalid@example.com\n")
    key = f"embedded/uploads/{batch_uuid}.txt"
    assert key in s3.object_keys()
    assert not list((server.data_dir / "var" / "uploads").glob("*.txt"))  # only in the bucket
    results = api.export_json(batch_uuid, include_statistics="false")
    assert set(results) == {"valid@example.com", "invalid@example.com"}

    other = api.ready("a@example.com\n")
    # The object removed behind the server's back: re-parsing says so instead of failing later.
    s3.client().delete_object(Bucket=s3.bucket, Key=f"embedded/uploads/{other}.txt")
    refused = api.client.patch(f"/v1/batch/{other}")
    assert refused.status_code == 400
    assert "no longer available" in refused.json()["message"]

    assert api.client.delete(f"/v1/batch/{batch_uuid}").status_code == 200
    assert key not in s3.object_keys()
    assert httpx.get(f"{server.base_url}/healthz").status_code == 200
