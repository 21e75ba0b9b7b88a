"""The ApexVerify v1 HTTP API: routers per resource, the operations endpoints and the API's
middleware. Mounted beside the dashboard by ``apexverify/app.py``."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from ..settings import Settings
from . import cors, middleware, ops, status_fast_path, upload_guard
from .routers import account, batches, unit, webhooks

router = APIRouter()
router.include_router(batches.router)
router.include_router(account.router)
router.include_router(unit.router)
router.include_router(webhooks.router)
router.include_router(ops.router)


def install(app: FastAPI, settings: Settings) -> None:
    """The API's middleware. The upload guard goes first, so innermost: inside the rate limits
    (a refused upload still counts against its key) and the fixed headers. CORS goes last,
    so outermost: it answers preflights before anything could refuse them, and its headers
    reach every answer of ``POST /v1/unit`` to an allowed origin, 401s and 429s included.
    The status fast path is appended: innermost of all, inside the catch-all 500 too."""
    status_fast_path.install(app)
    upload_guard.install(app)
    middleware.install(app, settings)
    cors.install(app)


__all__ = ["install", "router"]
