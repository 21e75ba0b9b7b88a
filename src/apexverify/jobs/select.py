"""Which job queue a process uses: in-process on SQLite, procrastinate when scaled out."""

from __future__ import annotations

from ..errors import ConfigurationError
from ..settings import Settings
from ..store.db import Store
from .base import JobQueue
from .inprocess import InProcessQueue


def use_procrastinate(settings: Settings, store: Store) -> bool:
    is_pg = store.engine.dialect.name == "postgresql"
    if settings.job_runner == "procrastinate" and not is_pg:
        raise ConfigurationError(
            "APEXVERIFY_JOB_RUNNER", "procrastinate needs a PostgreSQL APEXVERIFY_DATABASE_URL"
        )
    return settings.job_runner == "procrastinate" or (settings.job_runner == "auto" and is_pg)


def make_queue(settings: Settings, store: Store) -> JobQueue:
    if use_procrastinate(settings, store):
        from .procrastinate_queue import ProcrastinateQueue

        return ProcrastinateQueue(store)
    return InProcessQueue(concurrency=settings.verify_parallel_chunks)


def prepare_schema(queue: JobQueue, store: Store) -> None:
    """Apply procrastinate's schema when this queue needs it (idempotent)."""
    if queue.distributed:
        from .procrastinate_queue import apply_schema

        apply_schema(store)
