"""The scale-out queue: jobs live in PostgreSQL (procrastinate), any number of workers run them.

Enqueueing goes through SQL (``procrastinate_defer_jobs_v1``, procrastinate 3.10's schema) on
a SQLAlchemy session rather than procrastinate's Python connector, for two reasons: a caller
already inside a transaction enqueues atomically with its own state change, and an API
process never needs an async procrastinate pool just to enqueue.

A job is not enqueued while one with the same dedupe key (procrastinate's queueing lock) is
waiting or running. Retries are the tasks' own business (the batches feature re-defers with
backoff), so procrastinate retries nothing; a job left ``doing`` by a dead worker is retried
by ``jobs/worker.py``'s stall recovery.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from typing import Any

import procrastinate
import psycopg
from procrastinate.schema import SchemaManager
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..logs import job_context
from ..store.db import Store
from .base import Job, JobQueue, Periodic, Task

QUEUE = "apexverify"

_DEFER_SQL = text(
    "SELECT procrastinate_defer_jobs_v1(ARRAY[ROW(:queue, :task, :priority, :lock, :qlock,"
    " CAST(:args AS jsonb), :at)::procrastinate_job_to_defer_v1]) "
    "WHERE NOT EXISTS (SELECT 1 FROM procrastinate_jobs WHERE queueing_lock = :qlock"
    " AND status IN ('todo', 'doing'))"
)
_ACTIVE_SQL = "SELECT 1 FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"


def libpq_url(database_url: str) -> str:
    """``postgresql+psycopg://`` (SQLAlchemy) -> ``postgresql://`` (libpq/psycopg)."""
    return database_url.replace("postgresql+psycopg://", "postgresql://", 1)


def _enqueue(session: Session, job: Job) -> bool:
    params = {
        "queue": QUEUE,
        "task": job.task,
        "priority": job.priority,
        "lock": job.lock,
        "qlock": job.key,
        "args": json.dumps(dict(job.args)),
        "at": datetime.fromtimestamp(job.run_at, UTC) if job.run_at else None,
    }
    # A savepoint: two processes racing on the same queueing lock make the loser's insert
    # fail on procrastinate's unique index, which must not abort the caller's transaction.
    try:
        with session.begin_nested():
            return session.execute(_DEFER_SQL, params).first() is not None
    except IntegrityError:
        return False


def _in_job_context(task: Task) -> Task:
    """``task`` run with its batch in the logging context (logs.BATCH_UUID): the worker's
    lines while it runs name the batch."""

    @functools.wraps(task)
    async def run(**args: Any) -> None:
        with job_context(args):
            await task(**args)

    return run


class ProcrastinateQueue(JobQueue):
    distributed = True

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store
        self.app = procrastinate.App(
            connector=procrastinate.PsycopgConnector(conninfo=libpq_url(store.url))
        )

    def register(self, name: str, task: Task) -> None:
        super().register(name, task)
        self.app.task(name=name, queue=QUEUE, retry=False)(_in_job_context(task))

    def submit(self, job: Job) -> bool:
        with self.store.write() as session:
            return _enqueue(session, job)

    def submit_with(self, session: Session, job: Job) -> None:
        """The job row is written by the caller's transaction: never lost, never run for a
        state that was rolled back."""
        _enqueue(session, job)

    def active(self, task: str | None = None, **match: str) -> bool:
        # The keys are argument names from our own code, never user input.
        sql = _ACTIVE_SQL + (" AND task_name = :task" if task is not None else "")
        sql += "".join(f" AND args->>'{k}' = :m_{k}" for k in match) + " LIMIT 1"
        params: dict[str, Any] = {"task": task, **{f"m_{k}": v for k, v in match.items()}}
        with self.store.read() as session:
            return session.execute(text(sql), params).first() is not None

    async def start(self, periodic: tuple[Periodic, ...] = ()) -> None:
        """API processes only enqueue; ``apexverify worker`` executes (``jobs/worker.py``)."""

    async def stop(self) -> None:
        """Nothing runs here."""


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
