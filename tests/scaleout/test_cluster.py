"""Scale-out mode end to end: PostgreSQL store, procrastinate workers in separate processes,
several API processes, Redis-shared rate limits. Every test gets a fresh database."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import psycopg
import pytest

from tests.api import test_workflow_guide as guide
from tests.api.helpers import Api
from tests.scaleout.conftest import Cluster
from tests.scaleout.lb import RoundRobinProxy


@pytest.mark.skipif(not (shutil.which("jq") and shutil.which("curl")), reason="needs jq and curl")
def test_workflow_guide_on_postgres_two_apis_three_workers(
    make_cluster: object, tmp_path: Path, pg_url: str
) -> None:
    cluster: Cluster = make_cluster()  # type: ignore[operator]
    first, second = cluster.add_server(), cluster.add_server()
    for _ in range(3):
        cluster.add_worker()
    # The guide waits a fixed 10 s between the parse request and the launch. Workers still
    # importing the application on a loaded machine could use most of them, so the guide
    # starts once they are running jobs, as a deployment's workers would be.
    _wait_for_workers(pg_url, 3, cluster)
    api_key = first.create_account(sandbox=True)[0]
    with RoundRobinProxy([first.port, second.port]) as lb:
        # The guide's own test, unchanged, with the load balancer as its server.
        (tmp_path / "guide").mkdir()
        guide.test_guide_end_to_end_example_runs_as_written(
            SimpleNamespace(base_url=lb.base_url),  # type: ignore[arg-type]
            api_key,
            tmp_path / "guide",
        )
        assert lb.hits[first.port] > 0, lb.hits
        assert lb.hits[second.port] > 0, lb.hits
    assert "verify_chunk" in "".join(w.log_tail(400) for w in cluster.workers), cluster.logs()


def _contacts(n: int) -> str:
    kinds = ("valid", "invalid", "unknown", "catchall", "role")
    return "\n".join(f"{kinds[i % len(kinds)]}+{i}@example.com" for i in range(n)) + "\n"


def test_worker_killed_mid_batch_batch_completes_once(make_cluster: object, pg_url: str) -> None:
    cluster: Cluster = make_cluster(
        APEXVERIFY_SANDBOX_LATENCY_MS="400", APEXVERIFY_VERIFY_CHUNK_SIZE="10"
    )  # type: ignore[operator]
    server = cluster.add_server()
    victim = cluster.add_worker(concurrency=4)
    api_key = server.create_account(sandbox=True)[0]
    api = Api(server.base_url, api_key)
    total = 300
    batch_uuid = api.ready(_contacts(total))
    assert api.client.post(f"/v1/batch/{batch_uuid}").json() == {"status": "ok"}

    # Let the doomed worker take chunks, then kill it while it holds some of them.
    deadline = time.monotonic() + 30
    while _doing_jobs(pg_url) < 2:
        assert time.monotonic() < deadline, cluster.logs()
        time.sleep(0.05)
    victim.kill()
    held = _doing_jobs(pg_url)
    assert held >= 1
    cluster.add_worker(concurrency=4)
    cluster.add_worker(concurrency=4)

    body = api.wait_for(batch_uuid, "verification_done", timeout=90)
    assert body["status"] == "verification_done"
    results = api.export_json(batch_uuid)
    expected = set(_contacts(total).split())
    assert expected <= set(results), set(results) ^ expected
    assert all(results[c]["email"] == c for c in expected)
    with psycopg.connect(pg_url) as conn:
        per_record = conn.execute(
            "SELECT COUNT(*), COUNT(verdict) FROM records r JOIN batches b ON b.pk = r.batch_pk"
            " WHERE b.uuid = %s",
            (batch_uuid,),
        ).fetchone()
        ledger = conn.execute(
            "SELECT kind, COUNT(*) FROM credit_ledger WHERE batch_uuid = %s GROUP BY kind",
            (batch_uuid,),
        ).fetchall()
        verified = conn.execute(
            "SELECT verified, to_verify FROM batches WHERE uuid = %s", (batch_uuid,)
        ).fetchone()
    assert per_record == (total, total)
    # The progress counter only counts first writes: re-run chunks added nothing.
    assert verified == (total, total)
    kinds = dict(ledger)
    assert kinds.get("debit") == 1, ledger
    assert all(count == 1 for count in kinds.values()), ledger
    assert "retried" in "".join(w.log_tail(400) for w in cluster.workers[1:]), cluster.logs()


def _wait_for_workers(pg_url: str, count: int, cluster: Cluster) -> None:
    deadline = time.monotonic() + 60
    while True:
        with psycopg.connect(pg_url) as conn:
            try:
                row = conn.execute("SELECT COUNT(*) FROM procrastinate_workers").fetchone()
            except psycopg.errors.UndefinedTable:  # the schema is not applied yet
                row = (0,)
        if row and int(row[0]) >= count:
            return
        assert time.monotonic() < deadline, cluster.logs()
        time.sleep(0.1)


def _doing_jobs(pg_url: str) -> int:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM procrastinate_jobs WHERE status = 'doing'"
            " AND task_name = 'verify_chunk'"
        ).fetchone()
    return int(row[0])


def test_rate_limit_shared_across_two_api_processes(make_cluster: object, redis_url: str) -> None:
    # A bucket of 180 that barely refills while the test runs (at the default 3/s, the
    # seconds the 180 requests take would give back a few tokens).
    cluster: Cluster = make_cluster(
        APEXVERIFY_RATE_LIMIT_CAPACITY="180",
        APEXVERIFY_RATE_LIMIT_REFILL_PER_SECOND="0.01",
        APEXVERIFY_REDIS_URL=redis_url,
    )  # type: ignore[operator]
    first, second = cluster.add_server(), cluster.add_server()
    api_key = first.create_account(sandbox=True)[0]
    headers = {"X-API-Key": api_key}
    with httpx.Client(headers=headers, timeout=10) as client:
        codes = []
        for i in range(180):
            base = first.base_url if i % 2 else second.base_url
            codes.append(client.get(f"{base}/v1/account/credits").status_code)
        assert codes.count(200) == 180, codes
        over_first = client.get(f"{first.base_url}/v1/account/credits")
        over_second = client.get(f"{second.base_url}/v1/account/credits")
    assert over_first.status_code == 429
    assert over_second.status_code == 429
    assert int(over_first.headers["Retry-After"]) >= 1
    assert over_second.headers["X-RateLimit-Remaining"] == "0"


def test_readyz_and_metrics_in_scaleout_mode(make_cluster: object, redis_url: str) -> None:
    cluster: Cluster = make_cluster(APEXVERIFY_REDIS_URL=redis_url)  # type: ignore[operator]
    server = cluster.add_server()
    cluster.add_worker()
    api = Api(server.base_url, server.create_account(sandbox=True)[0])
    api.run(_contacts(20))
    ready = httpx.get(f"{server.base_url}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "migrations": "ok", "redis": "ok"}
    text = httpx.get(f"{server.base_url}/metrics").text
    assert 'apexverify_http_requests_total{method="POST",status="200"}' in text
    assert "# TYPE apexverify_jobs gauge" in text


def test_readyz_fails_when_redis_is_unreachable(tmp_path: Path) -> None:
    from tests.support.server import free_port, start_server

    server = start_server(tmp_path, APEXVERIFY_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    try:
        ready = httpx.get(f"{server.base_url}/readyz")
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["database"] == "ok"
        assert checks["redis"].startswith("error")
    finally:
        server.stop()


def test_lost_enqueue_after_launch_is_recovered_by_the_sweeper(
    make_cluster: object, pg_url: str
) -> None:
    """The API commits the launch, then enqueues; an API process dying in between leaves an
    ongoing batch with no job. A worker's sweeper must find it and finish it."""
    cluster: Cluster = make_cluster()  # type: ignore[operator]
    server = cluster.add_server()
    api = Api(server.base_url, server.create_account(sandbox=True)[0])
    parser = cluster.add_worker()
    batch_uuid = api.ready(_contacts(40))
    parser.stop()  # no worker runs while the enqueue is lost
    assert api.client.post(f"/v1/batch/{batch_uuid}").json() == {"status": "ok"}
    with psycopg.connect(pg_url, autocommit=True) as conn:
        lost = conn.execute(
            "DELETE FROM procrastinate_jobs WHERE args->>'batch_uuid' = %s"
            " AND status = 'todo' RETURNING task_name",
            (batch_uuid,),
        ).fetchall()
    assert lost == [("verify_batch",)]
    assert api.status(batch_uuid)["status"] == "verification_ongoing"
    rescuer = cluster.add_worker()
    assert api.wait_for(batch_uuid, "verification_done", timeout=30)["status"] == (
        "verification_done"
    )
    assert "sweeper re-deferred 1 batches" in rescuer.log_tail(200)
