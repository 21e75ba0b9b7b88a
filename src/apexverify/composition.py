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
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from . import logs, metrics
from .batches import tasks
from .batches.context import Services
from .batches.hashing import load_secret
from .batches.parsing import shutdown_pool, warm_pool
from .batches.retry import RetryPolicy
from .jobs.base import JobQueue
from .jobs.process_host import ProcessHost
from .jobs.select import make_queue, prepare_schema
from .settings import Settings
from .storage import make_storage, sweep_leftovers
from .store.db import Store
from .store.migrate import upgrade
from .verify.base import HealthReporter, RecordType, Verifier, VerifierFactory
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


def with_job_process(services: Services) -> None:
    """``apexverify serve`` in embedded mode: the CPU-heavy job bodies (parses, sandbox
    chunks) run in a process of their own, so they never hold the event loop's GIL
    (``jobs/process_host.py``). Off with ``APEXVERIFY_JOB_PROCESS=false``, and when jobs
    run in ``apexverify worker`` processes anyway."""
    if services.queue.distributed or not services.settings.job_process:
        return
    # The level this process logs at (``serve --log-level`` may have changed the setting's).
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    factory = partial(hosted_services, services.settings, services.secret, services.retry, level)
    services.host = ProcessHost("job", factory, services.queue, release_hosted)


class _NoEngines:
    """A job process builds no engine: bodies that need one receive it as an argument."""

    def build(self, record_type: RecordType, *, sandbox: bool) -> Verifier:
        raise RuntimeError("engines are built in the server process, not in a job process")

    async def aclose(self) -> None:
        return None


def hosted_services(
    settings: Settings, secret: bytes, retry: RetryPolicy, log_level: str, queue: JobQueue
) -> Services:
    """The services of a job process (``ProcessHost`` calls this once in it): its own
    database engine and storage over the server's settings; its queue records what the
    bodies defer for the server to enqueue."""
    logs.configure(log_level, settings.log_format)
    warm_pool(settings.parse_workers)  # its parse workers, ahead of the first large upload
    return Services(
        settings=settings,
        store=Store(settings.database_url),
        queue=queue,
        secret=secret,
        storage=make_storage(settings),
        engines=_NoEngines(),
        retry=retry,
    )


def release_hosted(services: Services) -> None:
    """In the job process, whenever no body runs: close its idle database connections, and
    with them their page caches (16 MiB each once a big parse went through)."""
    services.store.engine.dispose()


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
    # Warm the parse workers (or the job process, which starts its own) in the background;
    # the server is usable meanwhile.
    host = services.host
    loop = asyncio.get_running_loop()
    if host is not None:
        warming: asyncio.Future[object] | None = loop.run_in_executor(None, host.warm)
    elif parse_pool:
        warming = loop.run_in_executor(None, warm_pool, services.settings.parse_workers)
    else:
        warming = None
    try:
        yield services
    finally:
        await services.queue.stop()
        if warming is not None:
            await warming
        if host is not None:
            host.stop()
        elif warming is not None:
            shutdown_pool()
        await services.engines.aclose()
        services.store.dispose()
