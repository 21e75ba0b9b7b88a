"""The v1 API's middleware: per-key rate limits with their headers, the early 413 for a
declared upload length over the limit (before the multipart parser spools the body), and
``nosniff`` / ``no-store`` on every answer (``web/headers.py``).

Plain ASGI, not ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware`` wraps every
response in a stream and a task group, which measurably costs the event loop on a busy
status endpoint (``docs/benchmarks.md``).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..settings import Settings
from ..web.headers import API_HEADERS, FixedHeadersMiddleware
from .ratelimit import RateLimiter

# Room for the multipart envelope and the form fields around the file itself.
_MULTIPART_OVERHEAD = 64 * 1024


def _declared_too_large(scope: Scope, headers: Headers, max_bytes: int) -> bool:
    length = headers.get("content-length", "")
    return (
        scope["method"] == "POST"
        and scope["path"] == "/v1/batch"
        and length.isdigit()
        and int(length) > max_bytes + _MULTIPART_OVERHEAD
    )


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, limiter: RateLimiter, max_upload_bytes: int) -> None:
        self.app = app
        self.limiter = limiter
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        client = scope.get("client")
        decision = await self.limiter.hit(
            headers.get("x-api-key"), client[0] if client else "unknown"
        )
        extra = decision.headers()
        if not decision.allowed:
            refused = JSONResponse(
                {"message": "Too Many Requests"},
                status_code=429,
                headers={**extra, "Retry-After": str(decision.retry_after)},
            )
            await refused(scope, receive, send)
            return
        if _declared_too_large(scope, headers, self.max_upload_bytes):
            too_large = JSONResponse(
                {"message": f"The file is larger than {self.max_upload_bytes} bytes."},
                status_code=413,
                headers=extra,
            )
            await too_large(scope, receive, send)
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
    app.add_middleware(
        RateLimitMiddleware, limiter=limiter, max_upload_bytes=settings.max_upload_bytes
    )
    # Added last, so outside the limiter: its 429s and 413s get these headers too.
    app.add_middleware(FixedHeadersMiddleware, prefix="/v1/", headers=API_HEADERS)
