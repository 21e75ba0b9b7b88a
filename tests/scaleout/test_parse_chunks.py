"""Large uploads in scale-out mode are parsed as chunk jobs shared by the workers, with the
same figures as the one-job parse of the embedded mode, and a re-run chunk inserts nothing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import func, select

from apexverify.batches import parse_chunks
from apexverify.composition import build_services
from apexverify.settings import Settings
from apexverify.store.models import Batch, ParseChunk, Record
from tests.api.helpers import Api
from tests.scaleout.conftest import Cluster
from tests.support.server import LiveServer

CHUNK_BYTES = 64 * 1024


def _contacts(n: int) -> str:
    """About 25 bytes a line: ``n`` = 20,000 makes ~8 chunks. Duplicates of early lines sit
    late in the file (across chunks), with case variants, exact repeats and bad lines."""
    kinds = ("valid", "invalid", "unknown", "catchall", "role")
    lines = [f"{kinds[i % len(kinds)]}+{i}@example.com" for i in range(n)]
    for i in range(0, n, 97):
        lines.append(f"{kinds[i % len(kinds)]}+{i}@EXAMPLE.com")  # same address, other case
        lines.append(lines[i])  # the same text again
        lines.append(f"broken-{i}@")  # malformed
    return "\n".join(lines) + "\n"


def _figures(api: Api, batch_uuid: str) -> dict[str, Any]:
    status = api.status(batch_uuid)
    return {"found_content": status["found_content"], "found_cost": status["found_cost"]}


def _reference(make_server: Any, content: str, **fields: str) -> dict[str, Any]:
    """The same upload on the embedded mode (SQLite, one-job parse)."""
    server: LiveServer = make_server()
    api = Api(server.base_url, server.create_account(sandbox=True)[0])
    return _figures(api, api.ready(content, **fields))


def test_large_upload_is_parsed_by_several_workers_with_one_job_figures(
    make_cluster: object, make_server: object
) -> None:
    cluster: Cluster = make_cluster(APEXVERIFY_PARSE_CHUNK_BYTES=str(CHUNK_BYTES))  # type: ignore[operator]
    server = cluster.add_server()
    for _ in range(3):
        cluster.add_worker(concurrency=1)
    api = Api(server.base_url, server.create_account(sandbox=True)[0])
    content = _contacts(20_000)
    assert len(content) > 4 * CHUNK_BYTES
    batch_uuid = api.ready(content)
    assert _figures(api, batch_uuid) == _reference(make_server, content), cluster.logs()
    # procrastinate's own line: the module name ``parse_chunks`` in the planner's log line
    # must not count as having run a chunk.
    ran_chunks = [w for w in cluster.workers if "Starting job parse_chunk[" in w.log_tail(2000)]
    assert len(ran_chunks) >= 2, cluster.logs()

    # Re-parse with other parameters (PUT): chunks of the new generation, same answer again.
    changed = api.client.put(
        f"/v1/batch/{batch_uuid}",
        json={"type": "email", "target_country": "US", "remove_duplicate": False},
    )
    assert changed.status_code == 200
    api.wait_for(batch_uuid, "ready_for_verification")
    expected = _reference(make_server, content, remove_duplicate="false")
    assert _figures(api, batch_uuid) == expected

    assert api.client.post(f"/v1/batch/{batch_uuid}").json() == {"status": "ok"}
    done = api.wait_for(batch_uuid, "verification_done")
    assert done["stats"]["total_verification"] == expected["found_content"]["valid_email"]


def test_a_rerun_chunk_inserts_nothing_and_the_last_one_publishes(
    make_cluster: object, make_server: object, pg_url: str, tmp_path: Path
) -> None:
    cluster: Cluster = make_cluster(APEXVERIFY_PARSE_CHUNK_BYTES=str(CHUNK_BYTES))  # type: ignore[operator]
    server = cluster.add_server()  # no worker: the chunk jobs are run by hand below
    api = Api(server.base_url, server.create_account(sandbox=True)[0])
    content = _contacts(12_000)
    batch_uuid = api.new_batch(content)

    settings = Settings.from_env(cluster.env).replace(data_dir=tmp_path / "local")
    services = build_services(settings)
    with services.store.read() as session:
        generation = session.scalar(select(Batch.parse_generation).where(Batch.uuid == batch_uuid))
    jobs: list[dict[str, Any]] = []
    done = parse_chunks.plan(
        services, batch_uuid, generation, lambda _session, **job: jobs.append(job)
    )
    assert not done
    assert len(jobs) >= 4

    def rows() -> int:
        with services.store.read() as session:
            return int(session.scalar(select(func.count()).select_from(Record)) or 0)

    first = jobs[0]
    args = (services, batch_uuid, generation)
    assert parse_chunks.load_range(*args, first["first_seq"], first["start"], first["end"]) is False
    after_first = rows()
    assert after_first > 0
    # The same job again (a retry after a crash past its commit, or a doubled job).
    assert parse_chunks.load_range(*args, first["first_seq"], first["start"], first["end"]) is False
    assert rows() == after_first
    # A re-plan (sweeper, restart) keeps the ranges and re-offers only the unfinished ones.
    again: list[dict[str, Any]] = []
    parse_chunks.plan(services, batch_uuid, generation, lambda _s, **job: again.append(job))
    assert again == jobs[1:]

    last = [parse_chunks.load_range(*args, j["first_seq"], j["start"], j["end"]) for j in jobs[1:]]
    assert last[-1] is True
    assert not any(last[:-1])
    parse_chunks.finish(*args)
    assert api.status(batch_uuid)["status"] == "ready_for_verification"
    assert _figures(api, batch_uuid) == _reference(make_server, content)
    with services.store.read() as session:
        assert session.scalar(select(func.count()).select_from(ParseChunk)) == 0
    services.store.dispose()


# Holds every COPY into ``records`` at its end, inside the chunk's open transaction, while the
# gate table has a row: the rows are written but not committed, the worst moment to crash.
_HOLD_LOADS = """
CREATE TABLE test_parse_gate (closed boolean);
INSERT INTO test_parse_gate VALUES (true);
CREATE FUNCTION test_hold_load() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WHILE EXISTS (SELECT 1 FROM test_parse_gate) LOOP
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN NULL;
END $$;
CREATE TRIGGER test_hold_load AFTER INSERT ON records
    FOR EACH STATEMENT EXECUTE FUNCTION test_hold_load();
"""


def _held_loads(pg_url: str) -> int:
    """Chunk transactions waiting at the gate with their rows inserted."""
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event = 'PgSleep' AND query LIKE 'COPY records%'"
        ).fetchone()
    return int(row[0]) if row else 0


def _doing_parse_chunks(pg_url: str) -> int:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM procrastinate_jobs"
            " WHERE task_name = 'parse_chunk' AND status = 'doing'"
        ).fetchone()
    return int(row[0]) if row else 0


def _batch_rows(pg_url: str, batch_uuid: str) -> tuple[int, int]:
    """(records, distinct seqs) of one batch."""
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT seq) FROM records r"
            " JOIN batches b ON b.pk = r.batch_pk WHERE b.uuid = %s",
            (batch_uuid,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_worker_killed_mid_parse_chunk_is_taken_over_without_doubled_rows(
    make_cluster: object, make_server: object, pg_url: str
) -> None:
    cluster: Cluster = make_cluster(APEXVERIFY_PARSE_CHUNK_BYTES=str(CHUNK_BYTES))  # type: ignore[operator]
    server = cluster.add_server()  # migrates: the records table exists from here on
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(_HOLD_LOADS)
    victim = cluster.add_worker(concurrency=2)
    api = Api(server.base_url, server.create_account(sandbox=True)[0])
    content = _contacts(12_000)
    batch_uuid = api.new_batch(content)

    # Kill -9 the worker while both its chunk jobs hold inserted, uncommitted rows.
    deadline = time.monotonic() + 30
    while _held_loads(pg_url) < 2:
        assert time.monotonic() < deadline, cluster.logs()
        time.sleep(0.05)
    victim.kill()
    assert _doing_parse_chunks(pg_url) == 2
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM test_parse_gate")
    # The orphaned transactions end when their backends find the client gone: rolled back.
    cluster.add_worker(concurrency=2)
    cluster.add_worker(concurrency=2)

    api.wait_for(batch_uuid, "ready_for_verification", timeout=45)
    assert _figures(api, batch_uuid) == _reference(make_server, content), cluster.logs()
    lines = sum(1 for line in content.splitlines() if line.strip())
    assert _batch_rows(pg_url, batch_uuid) == (lines, lines)
    # The victim's chunks were re-run through stalled-job recovery (while they stayed
    # "doing", the sweeper saw an active job and left the batch alone).
    assert "retried" in "".join(w.log_tail(400) for w in cluster.workers[1:]), cluster.logs()
