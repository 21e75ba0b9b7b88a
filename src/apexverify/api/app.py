"""The FastAPI application: wiring only. Lifespan = migrate, start the job runner, resume."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from .. import dashboard
from ..batches import tasks
from ..batches.context import Services
from ..batches.hashing import load_secret
from ..batches.parsing import shutdown_pool, warm_pool
from ..jobs import metrics as job_metrics
from ..jobs.select import make_runner, prepare_schema
from ..settings import Settings
from ..storage import make_storage
from ..store.db import Store
from ..store.migrate import upgrade
from . import errors, ops
from .ratelimit import RateLimiter
from .routers import account, batches, unit

log = logging.getLogger(__name__)


# Room for the multipart envelope and the form fields around the file itself.
_MULTIPART_OVERHEAD = 64 * 1024


def _declared_too_large(request: Request, max_bytes: int) -> bool:
    length = request.headers.get("content-length", "")
    return (
        request.method == "POST"
        and request.url.path == "/v1/batch"
        and length.isdigit()
        and int(length) > max_bytes + _MULTIPART_OVERHEAD
    )


def build_services(settings: Settings) -> Services:
    store = Store(settings.database_url)
    return Services(
        settings=settings,
        store=store,
        jobs=make_runner(settings, store),
        secret=load_secret(settings.secret_key, settings.data_dir),
        storage=make_storage(settings),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    services = build_services(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        upgrade(services.store)
        prepare_schema(services.jobs, services.store)
        tasks.register(services.jobs, services)
        await services.jobs.start()
        # Warm the parse workers in the background; the server is usable meanwhile.
        warming = asyncio.get_running_loop().run_in_executor(
            None, warm_pool, settings.parse_workers
        )
        resumed = await tasks.resume_all(services)
        if resumed:
            log.info("resumed %d unfinished batches", resumed)
        yield
        await services.jobs.stop()
        await warming
        shutdown_pool()
        services.store.dispose()

    app = FastAPI(
        title="ApexVerify",
        version="1.0.0",
        description="Self-hosted ApexVerify v1 API: batch verification of emails and phones.",
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.limiter = RateLimiter(settings.rate_limit_per_minute, settings.redis_url)
    errors.install(app, html_error=dashboard.error_page, html_paths=dashboard.owns)
    app.include_router(batches.router)
    app.include_router(account.router)
    app.include_router(unit.router)
    app.include_router(ops.router)
    dashboard.install(app)
    if services.jobs.distributed:
        job_metrics.watch_queue(services.store)

    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        with job_metrics.REQUEST_SECONDS.time():
            response = await call_next(request)
        job_metrics.REQUESTS.labels(request.method, str(response.status_code)).inc()
        return response

    @app.middleware("http")
    async def rate_limit(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if not request.url.path.startswith("/v1/"):
            return await call_next(request)
        key = request.headers.get("x-api-key")
        client = request.client.host if request.client else "unknown"
        decision = await app.state.limiter.hit(key, client)
        if not decision.allowed:
            response: Response = JSONResponse(
                {"message": "Too Many Requests"},
                status_code=429,
                headers={"Retry-After": str(decision.retry_after)},
            )
        elif _declared_too_large(request, settings.max_upload_bytes):
            # Refused before the multipart parser spools the body to disk.
            response = JSONResponse(
                {"message": f"The file is larger than {settings.max_upload_bytes} bytes."},
                status_code=413,
            )
        else:
            response = await call_next(request)
        response.headers.update(decision.headers())
        return response

    return app
