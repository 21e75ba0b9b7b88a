"""Scale-out fixtures: a fresh PostgreSQL database per test, a dedicated Redis DB, and a
cluster of API processes and workers on them. Skips when PostgreSQL/Redis are unreachable."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.server import LiveServer, LiveWorker, server_env, start_worker

PG_ADMIN_URL = os.environ.get("APEXVERIFY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("APEXVERIFY_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")


def _pg_admin_connect():  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new database ``apexverify_test_<random>``, dropped after the test."""
    try:
        admin = _pg_admin_connect()
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    name = f"apexverify_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with _pg_admin_connect() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url() -> str:
    """A dedicated Redis DB number, flushed so earlier runs' counters do not leak in."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.flushdb()
    except Exception as exc:
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    finally:
        client.close()
    return REDIS_URL


@dataclass
class Cluster:
    root: Path
    env: dict[str, str]
    servers: list[LiveServer] = field(default_factory=list)
    workers: list[LiveWorker] = field(default_factory=list)

    def add_server(self) -> LiveServer:
        data_dir = self.root / f"api{len(self.servers)}"
        data_dir.mkdir(parents=True, exist_ok=True)
        server = LiveServer(data_dir=data_dir, env=self.env).start()
        self.servers.append(server)
        return server

    def add_worker(self, concurrency: int = 2, *extra_args: str) -> LiveWorker:
        name = f"worker{len(self.workers)}"
        worker = start_worker(self.root / name, self.env, concurrency, name, extra_args)
        self.workers.append(worker)
        return worker

    def logs(self) -> str:
        parts = [f"--- {w.name}\n{w.log_tail()}" for w in self.workers]
        parts += [f"--- api {s.port}\n{s.log_tail()}" for s in self.servers]
        return "\n".join(parts)

    def close(self) -> None:
        for proc in [*self.workers, *self.servers]:
            proc.stop()


@pytest.fixture
def make_cluster(tmp_path: Path, pg_url: str) -> Iterator[object]:
    """``make_cluster(**env)``: shared settings (PostgreSQL, one storage_dir, one secret)."""
    clusters: list[Cluster] = []

    def factory(**env: str) -> Cluster:
        shared = tmp_path / "shared"
        shared.mkdir(exist_ok=True)
        settings = server_env(
            tmp_path,
            APEXVERIFY_DATABASE_URL=pg_url,
            APEXVERIFY_DATA_DIR=str(shared / "var"),
            APEXVERIFY_STORAGE_DIR=str(shared / "storage"),
            APEXVERIFY_SECRET_KEY="scaleout-test-secret",
            APEXVERIFY_JOB_RUNNER="procrastinate",
            **env,
        )
        cluster = Cluster(root=tmp_path, env=settings)
        clusters.append(cluster)
        return cluster

    yield factory
    for cluster in clusters:
        cluster.close()
