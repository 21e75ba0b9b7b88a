"""The export extensions on PostgreSQL (the other dialect of the merge cursor's join, the
JSON casts and the Summary's grouped scan): a merged CSV, a filtered XLSX and the Summary
figures. Skips when PostgreSQL is unreachable (``APEXVERIFY_TEST_PG_URL``)."""

from __future__ import annotations

import csv
import io
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import openpyxl
import pytest

from apexverify.app import create_app
from apexverify.batches import tasks
from apexverify.composition import build_services, prepare_database
from apexverify.settings import Settings
from tests.api.test_export_merged import HEADER, ROWS, _csv_bytes, _decision, _finished
from tests.support.fakes import FakeEngines, RecordingQueue
from tests.support.fast import FAST_RETRY, Lab

PG_ADMIN_URL = os.environ.get("APEXVERIFY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_url() -> Iterator[str]:
    import psycopg

    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    name = f"apexverify_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def pg_lab(pg_url: str, tmp_path: Path) -> AsyncIterator[Lab]:
    config = Settings(database_url=pg_url, data_dir=tmp_path / "var", parse_workers=1)
    queue, engines = RecordingQueue(), FakeEngines()
    services = build_services(config, engines=engines, queue=queue, retry=FAST_RETRY)
    prepare_database(services)
    tasks.register(services)
    transport = httpx.ASGITransport(app=create_app(services=services), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://apexverify.test") as client:
        yield Lab(services, queue, engines, client)
    services.store.dispose()


async def test_merged_filtered_and_summary_on_postgresql(pg_lab: Lab, tmp_path: Path) -> None:
    key, batch_uuid = await _finished(
        pg_lab, "contacts.csv", _csv_bytes(HEADER, ROWS), column="Email"
    )
    path = f"/v1/batch/{batch_uuid}/export"
    body = (await pg_lab.get(key, path, format="csv")).content
    table = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    assert [row[: len(HEADER)] for row in table[1:]] == ROWS
    assert [row[len(HEADER)] for row in table[1:]] == [_decision(r[2]) or "" for r in ROWS]

    response = await pg_lab.get(key, path, format="xlsx", keep="risky")
    assert response.status_code == 200, response.text
    (tmp_path / "r.xlsx").write_bytes(response.content)
    book = openpyxl.load_workbook(tmp_path / "r.xlsx")
    kept = [row[0] for row in book["Results"].iter_rows(min_row=2, values_only=True)]
    assert kept == [r[2] for r in ROWS if _decision(r[2]) == "risky"]
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(values_only=True) if row[0]}
    assert summary["Risky"] == 3  # role, catch-all, disposable
    assert summary["Deliverable"] == 1
    assert summary["Undeliverable"] == 1
    assert summary["Unknown"] == 2
