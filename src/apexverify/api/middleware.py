"""The v1 API's middleware: per-key rate limits with their headers, and ``nosniff`` /
``no-store`` on every answer (``web/headers.py``). The early 401/413 of uploads is
``upload_guard.py``, inside these.

Plain ASGI, not ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware`` wraps every
response in a stream and a task group, which measurably costs the event loop on a busy
status endpoint (``docs/benchmarks.md``).
"""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..settings import Settings
from ..web.headers import API_HEADERS, FixedHeadersMiddleware
from .ratelimit import RateLimiter

log = logging.getLogger(__name__)


_WARN_EVERY_SECONDS = 60.0
_last_warning = -_WARN_EVERY_SECONDS


def _store_down(exc: Exception) -> None:
    """One warning a minute at most while the rate-limit store fails."""
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= _WARN_EVERY_SECONDS:
        _last_warning = now
        log.warning("rate limits not applied: their store failed (%s)", type(exc).__name__)


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        client = scope.get("client")
        try:
            decision = await self.limiter.hit(
                headers.get("x-api-key"), client[0] if client else "unknown"
            )
        except Exception as exc:
            # The shared bucket store (Redis) is unreachable: serve unlimited rather than
            # fail every request; /readyz reports Redis down meanwhile.
            _store_down(exc)
            await self.app(scope, receive, send)
            return
        extra = decision.headers()
        if not decision.allowed:
            refused = JSONResponse(
                {"message": "Too Many Requests"},
                status_code=429,
                headers={**extra, "Retry-After": str(decision.retry_after)},
            )
            await refused(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    response_headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: FastAPI, settings: Settings) -> None:
    limiter = RateLimiter.from_settings(settings)
    app.state.limiter = limiter  # the dashboard's sign-in uses it too
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    # Added last, so outside the limiter: its 429s and 413s get these headers too.
    app.add_middleware(FixedHeadersMiddleware, prefix="/v1/", headers=API_HEADERS)
