"""Scale-out runner: jobs live in PostgreSQL (procrastinate), any number of workers run them.

Enqueueing goes through SQL (``procrastinate_defer_jobs_v1``) on a SQLAlchemy session rather
than procrastinate's Python connector, for two reasons: a caller already inside a transaction
(the verification fan-out) enqueues atomically with its own state change, and the API process
never needs an async procrastinate pool just to enqueue.

Every enqueue is skipped when a job with the same queueing lock is already waiting or
running, so re-deferring (``resume_all``, the sweeper, a racing API process) never doubles
work; the per-chunk writes are idempotent anyway (see ``batches/verify_task.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import procrastinate
import psycopg
from procrastinate.retry import RetryStrategy
from procrastinate.schema import SchemaManager
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..store.db import Store
from .base import JobRunner, Task

log = logging.getLogger(__name__)

QUEUE = "apexverify"
# A failing job (engine error, database blip) is retried with backoff; the sweeper in
# ``jobs/worker.py`` re-defers a batch whose jobs gave up, so this bounds noise, not progress.
_RETRY = RetryStrategy(max_attempts=8, exponential_wait=2)

_DEFER_SQL = text(
    "SELECT procrastinate_defer_jobs_v1(ARRAY[ROW(:queue, :task, 0, :lock, :qlock,"
    " CAST(:args AS jsonb), :at)::procrastinate_job_to_defer_v1]) "
    "WHERE NOT EXISTS (SELECT 1 FROM procrastinate_jobs WHERE queueing_lock = :qlock"
    " AND status IN ('todo', 'doing'))"
)


def libpq_url(database_url: str) -> str:
    """``postgresql+psycopg://`` (SQLAlchemy) -> ``postgresql://`` (libpq/psycopg)."""
    return database_url.replace("postgresql+psycopg://", "postgresql://", 1)


def queueing_lock(name: str, kwargs: dict[str, Any]) -> str:
    return name + ":" + json.dumps(kwargs, sort_keys=True, separators=(",", ":"))


def defer_in(
    session: Session,
    name: str,
    *,
    lock: str | None,
    delay_seconds: float = 0,
    qlock: str | None = None,
    **kwargs: Any,
) -> bool:
    """Enqueue in the caller's transaction; False when a job with the same queueing lock
    (by default: same task and arguments) is already waiting or running."""
    at = datetime.now(UTC) + timedelta(seconds=delay_seconds) if delay_seconds > 0 else None
    params = {
        "queue": QUEUE,
        "task": name,
        "lock": lock,
        "qlock": qlock or queueing_lock(name, kwargs),
        "args": json.dumps(kwargs),
        "at": at,
    }
    # A savepoint: two processes racing on the same queueing lock make the loser's insert
    # fail on procrastinate's unique index, which must not abort the caller's transaction.
    try:
        with session.begin_nested():
            return session.execute(_DEFER_SQL, params).first() is not None
    except IntegrityError:
        return False


class ProcrastinateRunner(JobRunner):
    distributed = True

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store
        self.app = procrastinate.App(
            connector=procrastinate.PsycopgConnector(conninfo=libpq_url(store.url))
        )

    def register(self, name: str, task: Task) -> None:
        super().register(name, task)
        self.app.task(name=name, queue=QUEUE, retry=_RETRY)(task)

    def defer(self, name: str, *, lock: str, **kwargs: Any) -> None:
        with self.store.write() as session:
            defer_in(session, name, lock=lock, **kwargs)

    def defer_with(self, session: Session, name: str, *, lock: str, **kwargs: Any) -> None:
        """The job row is written by the caller's transaction: never lost, never run for a
        state that was rolled back."""
        defer_in(session, name, lock=lock, **kwargs)

    def defer_in(
        self,
        session: Session,
        name: str,
        *,
        lock: str | None,
        delay_seconds: float = 0,
        qlock: str | None = None,
        **kwargs: Any,
    ) -> bool:
        return defer_in(
            session, name, lock=lock, delay_seconds=delay_seconds, qlock=qlock, **kwargs
        )

    async def start(self) -> None:
        """API processes only enqueue; ``apexverify worker`` executes (``jobs/worker.py``)."""

    async def stop(self) -> None:
        await asyncio.sleep(0)


def apply_schema(store: Store) -> bool:
    """Create procrastinate's tables once (idempotent); True when it was applied now."""
    # One connection for lock, check and DDL: an advisory lock serialises several workers
    # booting on an empty database at the same moment.
    with psycopg.connect(libpq_url(store.url), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(727274)")
        try:
            row = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
            if row is not None and row[0] is not None:
                return False
            with conn.transaction():
                conn.execute(SchemaManager.get_schema())
            return True
        finally:
            conn.execute("SELECT pg_advisory_unlock(727274)")
