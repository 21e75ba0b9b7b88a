"""The web application: the v1 API and the dashboard, sibling routers mounted on one app over
services built once by the composition root. Wiring only."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import api, dashboard, metrics
from .api import docs as api_docs
from .batches.context import Services
from .composition import build_services, prepare_database, running
from .jobs.queue_metrics import watch_queue
from .logs import RequestIdMiddleware
from .settings import Settings
from .web import errors

log = logging.getLogger(__name__)


class RequestMetricsMiddleware:
    """Counts every HTTP answer by method and status, and times it (plain ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # unless the app starts a response
        started = time.perf_counter()

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            metrics.REQUEST_SECONDS.observe(time.perf_counter() - started)
            metrics.REQUESTS.labels(scope["method"], str(status)).inc()


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    """``services`` lets a test hand in services with fakes; else they are built (and their
    configuration checked) from ``settings`` or the environment."""
    if services is None:
        services = build_services(settings or Settings.from_env())
    built = services

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        prepare_database(built)
        async with running(built):
            yield

    app = FastAPI(
        title="ApexVerify",
        version="1.0.0",
        description="Self-hosted ApexVerify v1 API: batch verification of emails and phones.",
        lifespan=lifespan,
        # Served by api.docs from local assets (FastAPI's own pages load them from a CDN).
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = services
    errors.install(app, html_error=dashboard.error_page, html_paths=dashboard.owns)
    app.include_router(api.router)
    api_docs.install(app)
    app.include_router(dashboard.router)
    dashboard.install(app)
    api.install(app, services.settings)
    if services.queue.distributed:
        watch_queue(services.store)

    app.add_middleware(RequestMetricsMiddleware)
    # Outermost of ours: every line logged while a request is handled (uvicorn's access line
    # included) carries its id, and every answer its X-Request-Id.
    app.add_middleware(RequestIdMiddleware)

    return app
