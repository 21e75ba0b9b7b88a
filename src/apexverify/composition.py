"""The composition root: builds and validates the services once, for every entry point (the
web app, ``apexverify worker``, the admin CLI and the tests).

Validation happens here, before anything can be launched or debited: the settings are parsed
(``Settings.from_env`` raises ``ConfigurationError`` naming the variable) and every configured
engine is built once (``EngineFactory.check``), so an unknown provider, missing credentials
or a bad URL stop ``serve`` and ``worker`` with a message instead of stranding a launched
batch. Tests hand in fakes of the same interfaces (a recording queue, a scripted engine).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from . import metrics
from .batches import tasks
from .batches.context import Services
from .batches.hashing import load_secret
from .batches.parsing import shutdown_pool, warm_pool
from .batches.retry import RetryPolicy
from .jobs.base import JobQueue
from .jobs.select import make_queue, prepare_schema
from .settings import Settings
from .storage import make_storage, sweep_leftovers
from .store.db import Store
from .store.migrate import upgrade
from .verify.base import HealthReporter, VerifierFactory
from .verify.registry import EngineFactory


def build_services(
    settings: Settings,
    *,
    engines: VerifierFactory | None = None,
    queue: JobQueue | None = None,
    retry: RetryPolicy | None = None,
) -> Services:
    """Everything the features need, built once and checked. Raises ``ConfigurationError``."""
    if engines is None:
        factory = EngineFactory(settings, on_smtp_reply=metrics.count_smtp_reply)
        factory.check()
        engines = factory
    # /metrics exports the engines' environment checks (verify/ cannot import metrics).
    metrics.watch_environment(engines.health if isinstance(engines, HealthReporter) else None)
    store = Store(settings.database_url)
    return Services(
        settings=settings,
        store=store,
        queue=queue if queue is not None else make_queue(settings, store),
        secret=load_secret(settings.secret_key, settings.data_dir),
        storage=make_storage(settings),
        engines=engines,
        retry=retry or RetryPolicy(),
    )


def prepare_database(services: Services) -> None:
    """Migrate the schema, and procrastinate's when scaled out (idempotent)."""
    upgrade(services.store)
    prepare_schema(services.queue, services.store)


@asynccontextmanager
async def running(services: Services, *, parse_pool: bool = True) -> AsyncIterator[Services]:
    """The background side of a serving process: tasks registered, the queue executing (and
    sweeping up what a previous process left unfinished) until the block ends."""
    # Temporary files a killed process left (a half-copied upload, an export): only those no
    # live process can own are removed, which storage/tempfiles.py decides.
    await asyncio.to_thread(sweep_leftovers, services.settings)
    periodic = tasks.register(services)
    await services.queue.start(periodic)
    # Warm the parse workers in the background; the server is usable meanwhile.
    warming = (
        asyncio.get_running_loop().run_in_executor(None, warm_pool, services.settings.parse_workers)
        if parse_pool
        else None
    )
    try:
        yield services
    finally:
        await services.queue.stop()
        if warming is not None:
            await warming
            shutdown_pool()
        await services.engines.aclose()
        services.store.dispose()
