"""Which job runner a process uses: in-process on SQLite, procrastinate when scaled out."""

from __future__ import annotations

from ..settings import Settings
from ..store.db import Store
from .base import JobRunner
from .inprocess import InProcessRunner


def use_procrastinate(settings: Settings, store: Store) -> bool:
    choice = settings.job_runner.strip().lower()
    if choice not in {"auto", "inprocess", "procrastinate"}:
        raise ValueError(f"APEXVERIFY_JOB_RUNNER: unknown runner {settings.job_runner!r}")
    is_pg = store.engine.dialect.name == "postgresql"
    if choice == "procrastinate" and not is_pg:
        raise ValueError("APEXVERIFY_JOB_RUNNER=procrastinate needs a PostgreSQL database URL")
    return choice == "procrastinate" or (choice == "auto" and is_pg)


def make_runner(settings: Settings, store: Store) -> JobRunner:
    if use_procrastinate(settings, store):
        from .procrastinate_runner import ProcrastinateRunner

        return ProcrastinateRunner(store)
    return InProcessRunner()


def prepare_schema(runner: JobRunner, store: Store) -> None:
    """Apply procrastinate's schema when this runner needs it (idempotent)."""
    if runner.distributed:
        from .procrastinate_runner import apply_schema

        apply_schema(store)
