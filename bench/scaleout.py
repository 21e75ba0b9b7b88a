"""Scale-out benchmark: one batch verified by 1, 2 and 4 worker processes.

    .venv/bin/python bench/scaleout.py [--records 12000] [--chunk 100] [--latency-ms 500]

Each run gets a fresh PostgreSQL database (``APEXVERIFY_TEST_PG_URL``, default the local
``test`` database's server), one API process and N ``apexverify worker --concurrency C``
processes. Sandbox accounts stand in for the engines: ``APEXVERIFY_SANDBOX_LATENCY_MS``
sleeps once per chunk, like a network-bound engine waiting on SMTP/HLR replies, so the
figures measure how well chunk jobs spread over workers, not CPU speed. A last run with zero
latency and small chunks measures the queue's own overhead per chunk job (fetch, claim,
write results, progress, completion check).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.server import LiveServer, LiveWorker, server_env, start_worker

PG_ADMIN_URL = os.environ.get("APEXVERIFY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def machine() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} CPUs ({cpu}), {ram:.0f} GiB RAM, Python {platform.python_version()}"


@contextmanager
def cluster(workers: int, concurrency: int, **settings: str) -> Iterator[tuple[LiveServer, str]]:
    """A fresh PostgreSQL database, one API process and ``workers`` worker processes; yields
    the server and a sandbox API key, and drops everything afterwards."""
    name = f"apexverify_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    root = Path(tempfile.mkdtemp(prefix="scaleout-bench-"))
    env = server_env(
        root,
        APEXVERIFY_DATABASE_URL=PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name,
        APEXVERIFY_DATA_DIR=str(root / "var"),
        APEXVERIFY_STORAGE_DIR=str(root / "storage"),
        APEXVERIFY_SECRET_KEY="bench",
        APEXVERIFY_JOB_RUNNER="procrastinate",
        **settings,
    )
    server = LiveServer(data_dir=root, env=env).start()
    pool: list[LiveWorker] = []
    try:
        pool = [start_worker(root / f"w{i}", env, concurrency, f"w{i}") for i in range(workers)]
        yield server, server.create_account(sandbox=True)[0]
    finally:
        for worker in pool:
            worker.stop()
        server.stop()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(records: int, workers: int, concurrency: int, chunk: int, latency_ms: int) -> float:
    """Seconds from launch to verification_done for one batch."""
    settings = {
        "APEXVERIFY_VERIFY_CHUNK_SIZE": str(chunk),
        "APEXVERIFY_SANDBOX_LATENCY_MS": str(latency_ms),
    }
    with cluster(workers, concurrency, **settings) as (server, api_key):
        client = httpx.Client(base_url=server.base_url, headers={"X-API-Key": api_key}, timeout=60)
        body = "\n".join(f"user{i}@example.com" for i in range(records)) + "\n"
        files = {"file": ("contacts.txt", body.encode(), "text/plain")}
        data = {"name": "bench", "type": "email", "target_country": "US"}
        batch_uuid = client.post("/v1/batch", files=files, data=data).json()["batch_uuid"]
        while client.get(f"/v1/batch/{batch_uuid}").json()["status"] != "ready_for_verification":
            time.sleep(0.05)
        time.sleep(2)  # workers connected and idle before the clock starts
        started = time.perf_counter()
        assert client.post(f"/v1/batch/{batch_uuid}").json() == {"status": "ok"}
        while client.get(f"/v1/batch/{batch_uuid}").json()["status"] != "verification_done":
            time.sleep(0.05)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=12000)
    parser.add_argument("--chunk", type=int, default=100)
    parser.add_argument("--latency-ms", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4, help="jobs per worker process")
    parser.add_argument("--overhead-records", type=int, default=20000)
    parser.add_argument("--overhead-chunk", type=int, default=50)
    args = parser.parse_args()
    chunks = -(-args.records // args.chunk)
    print(f"machine: {machine()}")
    print(
        f"batch: {args.records} records, {chunks} chunk jobs of {args.chunk}, "
        f"{args.latency_ms} ms simulated engine latency per chunk, "
        f"{args.concurrency} jobs per worker"
    )
    print("| workers | seconds | records/s | speed-up | scaling efficiency |")
    print("|---|---|---|---|---|")
    base = 0.0
    for workers in (1, 2, 4):
        seconds = run(args.records, workers, args.concurrency, args.chunk, args.latency_ms)
        rate = args.records / seconds
        base = base or rate
        print(
            f"| {workers} | {seconds:.2f} | {rate:.0f} | {rate / base:.2f}x "
            f"| {100 * rate / (base * workers):.0f}% |",
            flush=True,
        )
    n = args.overhead_records
    overhead_chunks = -(-n // args.overhead_chunk)
    seconds = run(n, 1, 1, args.overhead_chunk, 0)
    print(
        f"queue overhead: {n} records in {overhead_chunks} chunk jobs of {args.overhead_chunk}, "
        f"zero engine latency, 1 worker x 1 job: {seconds:.2f} s = "
        f"{1000 * seconds / overhead_chunks:.1f} ms per chunk job"
    )


if __name__ == "__main__":
    main()
