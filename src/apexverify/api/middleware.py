"""The v1 API's middleware: per-key rate limits with their headers, and the early 413 for a
declared upload length over the limit (before the multipart parser spools the body)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from ..settings import Settings
from .ratelimit import RateLimiter

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


def install(app: FastAPI, settings: Settings) -> None:
    limiter = RateLimiter(settings.rate_limit_per_minute, settings.redis_url)
    app.state.limiter = limiter  # the dashboard's sign-in uses it too

    @app.middleware("http")
    async def rate_limit(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if not request.url.path.startswith("/v1/"):
            return await call_next(request)
        key = request.headers.get("x-api-key")
        client = request.client.host if request.client else "unknown"
        decision = await limiter.hit(key, client)
        if not decision.allowed:
            response: Response = JSONResponse(
                {"message": "Too Many Requests"},
                status_code=429,
                headers={"Retry-After": str(decision.retry_after)},
            )
        elif _declared_too_large(request, settings.max_upload_bytes):
            response = JSONResponse(
                {"message": f"The file is larger than {settings.max_upload_bytes} bytes."},
                status_code=413,
            )
        else:
            response = await call_next(request)
        response.headers.update(decision.headers())
        return response
