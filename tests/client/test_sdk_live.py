"""The SDK's new surface against a live server: verify_file parses the file once (the
batch's parse generation, bumped by every PUT and PATCH, stays at the upload's 1), the sync
and async clients give the same results, spreadsheets in and merged results out, streamed
exports equal to the in-memory ones."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest

from apexverify.client import AsyncClient, Client, EmailResult
from tests.client.table_files import ADDRESSES, TABLES
from tests.support.server import LiveServer

NO_CACHE = {"use_account_cache": False, "use_global_cache": False}


def parse_generation(server: LiveServer, batch_uuid: str) -> int:
    """The server's own count of parse runs started for a batch (1 at the upload, +1 per
    PUT or PATCH), read from its database."""
    with sqlite3.connect(f"file:{server.data_dir / 'apexverify.db'}?mode=ro", uri=True) as db:
        row = db.execute("SELECT parse_generation FROM batches WHERE uuid = ?", (batch_uuid,))
        return int(row.fetchone()[0])


@pytest.fixture
def contacts(tmp_path: Path) -> Path:
    path = tmp_path / "contacts.txt"
    path.write_text("\n".join(ADDRESSES) + "\n")
    return path


def test_verify_file_parses_the_file_once(
    live_server: LiveServer, api_key: str, contacts: Path
) -> None:
    with Client(api_key, live_server.base_url) as client:
        result = client.verify_file(
            contacts, initial_delay=0.05, max_account_cache_backoff=7, **NO_CACHE
        )
        details = client.details(result.batch_uuid)
        assert parse_generation(live_server, result.batch_uuid) == 1
        # The parameters travelled with the upload.
        assert details["parameters"]["use_global_cache"] is False
        assert details["parameters"]["max_account_cache_backoff"] == 7
        # A PUT is one more parse: the observable can tell.
        other = client.upload(contacts, name="x", type="email", target_country="US")
        client.configure(other.batch_uuid, type="email", target_country="US")
        assert parse_generation(live_server, other.batch_uuid) == 2


def _rows(rows: list[EmailResult]) -> list[tuple[object, ...]]:
    return sorted(
        (r.email, r.valid, r.wrong, r.unknown, r.quality, r.result, r.evidence) for r in rows
    )


async def test_async_and_sync_verify_file_agree(
    live_server: LiveServer, api_key: str, contacts: Path
) -> None:
    with Client(api_key, live_server.base_url) as client:
        sync = client.verify_file(contacts, initial_delay=0.05, **NO_CACHE)
        sync_rows = [r for r in client.iter_results(sync.batch_uuid) if isinstance(r, EmailResult)]
    async with AsyncClient(api_key, live_server.base_url) as aclient:
        done = await aclient.verify_file(contacts, initial_delay=0.05, **NO_CACHE)
        async_rows = [
            r async for r in aclient.iter_results(done.batch_uuid) if isinstance(r, EmailResult)
        ]
    assert done.batch_uuid != sync.batch_uuid
    assert parse_generation(live_server, done.batch_uuid) == 1
    assert len(sync_rows) == len(ADDRESSES)
    assert _rows(sync_rows) == _rows(async_rows)
    assert sync.stats is not None
    assert done.stats is not None
    assert (sync.stats.valid, sync.stats.wrong, sync.stats.unknown) == (
        done.stats.valid,
        done.stats.wrong,
        done.stats.unknown,
    )
    assert (done.status.verified, done.status.to_verify) == (4, 4)


def test_streamed_exports_equal_the_in_memory_ones(
    live_server: LiveServer, api_key: str, contacts: Path, tmp_path: Path
) -> None:
    with Client(api_key, live_server.base_url) as client:
        batch = client.verify_file(contacts, initial_delay=0.05).batch_uuid
        for fmt in ("json", "csv"):
            target = tmp_path / f"r.{fmt}"
            assert client.export_to(batch, target) == target.stat().st_size
            assert target.read_bytes() == client.export(batch, fmt)
        rows = list(client.iter_results(batch))
        assert {r.value for r in rows} == set(ADDRESSES)
        assert set(json.loads((tmp_path / "r.json").read_text())) == {*ADDRESSES, "_statistics"}
        kept = list(client.iter_results(batch, keep="undeliverable"))
        assert [r.value for r in kept] == ["invalid@example.com"]
        unit = client.unit("invalid@example.com", type="email")
        assert isinstance(unit, EmailResult)
        assert unit.wrong


@pytest.mark.parametrize("kind", sorted(TABLES))
def test_spreadsheets_through_the_sdk(
    live_server: LiveServer, api_key: str, tmp_path: Path, kind: str
) -> None:
    name, write, column = TABLES[kind]
    source = write(tmp_path / name)
    merged = tmp_path / "merged.csv"
    with Client(api_key, live_server.base_url) as client:
        result = client.verify_file(source, initial_delay=0.05, output=merged)
        assert result.status.content is not None
        assert result.status.content.valid == len(ADDRESSES)
        assert parse_generation(live_server, result.batch_uuid) == 1
    rows = list(csv.DictReader(io.StringIO(merged.read_text(encoding="utf-8-sig"))))
    assert [r[column] for r in rows] == ADDRESSES
    assert "decision" in rows[0]


async def test_async_spreadsheet_with_a_chosen_column(
    live_server: LiveServer, api_key: str, tmp_path: Path
) -> None:
    source = TABLES["hubspot"][1](tmp_path / "hubspot.csv")
    async with AsyncClient(api_key, live_server.base_url) as client:
        result = await client.verify_file(
            source,
            column="Email",
            initial_delay=0.05,
            output=tmp_path / "good.xlsx",
            keep="deliverable",
        )
    assert result.outputs == [tmp_path / "good.xlsx"]
    assert (tmp_path / "good.xlsx").stat().st_size > 0
