"""Operations endpoints: liveness, readiness and Prometheus metrics (not under /v1, not
rate limited, no API key: expose them only on the internal network). ``/metrics`` wants a
bearer token when ``APEXVERIFY_METRICS_TOKEN`` is set: its figures (request counts, queue
depths) are nobody else's business."""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from ..batches.context import Services
from ..store.migrate import alembic_config

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up and serving; says nothing about its dependencies."""
    return {"status": "ok"}


def _database_checks(services: Services) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    try:
        with services.store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            current = MigrationContext.configure(conn).get_current_revision()
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
        return checks
    head = ScriptDirectory.from_config(alembic_config(services.store.url)).get_current_head()
    checks["migrations"] = "ok" if current == head else f"at {current}, head is {head}"
    return checks


async def _redis_check(url: str) -> str:
    import redis.asyncio as redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    finally:
        await client.aclose()


async def _environment_checks(services: Services) -> tuple[dict[str, Any], bool]:
    """The engines' environment checks (``dns``, ``smtp_outbound``: docs/results.md,
    "Unhealthy environment"), stale ones refreshed, and whether they allow readiness."""
    from ..verify.base import HealthReporter  # kept beside its only use in this module

    if not isinstance(services.engines, HealthReporter):
        return {}, True  # a factory that measures nothing (test fakes)
    checks = await services.engines.check_health()
    report = {
        check.name: {
            "ok": check.ok,
            "reason": check.reason,
            "affects_readiness": check.affects_readiness,
            "details": check.details,
        }
        for check in checks
    }
    return report, all(check.ok for check in checks if check.affects_readiness)


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready to take traffic: database reachable, schema current, Redis reachable if used,
    and DNS telling the truth (a failing ``smtp_outbound`` check is reported, not fatal)."""
    services: Services = request.app.state.services
    checks = await asyncio.to_thread(_database_checks, services)
    if services.settings.redis_url:
        checks["redis"] = await _redis_check(services.settings.redis_url)
    environment, environment_ok = await _environment_checks(services)
    ready = (
        all(value == "ok" for value in checks.values())
        and "migrations" in checks
        and environment_ok
    )
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks, "environment": environment},
        status_code=200 if ready else 503,
    )


def _bearer_matches(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # Constant time: the comparison does not tell a prober how much of its guess was right.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8", "replace"), token.encode("utf-8")
    )


@router.get("/metrics")
def metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    token = services.settings.metrics_token
    if token and not _bearer_matches(request, token):
        return JSONResponse(
            {"message": "Unauthorized"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
