"""One place that turns errors into the spec's bodies: ``{"message": ...}`` for every status
except 422, which keeps FastAPI's ``{"detail": [...]}``. Nothing ever leaks a traceback."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import ApexError, ParseError

log = logging.getLogger(__name__)

_DEFAULT_MESSAGES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    429: "Too Many Requests",
}


def _jsonable_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors():
        item: dict[str, Any] = {k: error[k] for k in ("loc", "msg", "type") if k in error}
        if "input" in error:
            raw = error["input"]
            item["input"] = raw if isinstance(raw, str | int | float | bool | None) else str(raw)
            if isinstance(item["input"], str) and len(item["input"]) > 200:
                item["input"] = item["input"][:200] + "…"
        if "ctx" in error:
            item["ctx"] = {k: str(v) for k, v in error["ctx"].items()}
        errors.append(item)
    return errors


# Renders an error as a page for browser paths (the dashboard): (request, status, message).
HtmlError = Callable[[Request, int, str], Response]
ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


class CatchAllMiddleware:
    """Turns an exception that no handler took into the 500 answer, without re-raising.

    Starlette's outermost ``ServerErrorMiddleware`` sends the same answer but then re-raises,
    and uvicorn closes the connection: the client's next pooled request fails too. Innermost
    (inside every other middleware), so the 500 also gets the rate-limit and security headers
    and is counted in the metrics. An exception after the response started still propagates:
    closing the connection is then the only way to say the body is cut short.
    """

    def __init__(self, app: ASGIApp, handler: ErrorHandler) -> None:
        self.app = app
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_noting_start(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_noting_start)
        except Exception as exc:
            if started:
                raise
            response = await self.handler(Request(scope, receive), exc)
            await response(scope, receive, send)


def install(
    app: FastAPI,
    html_error: HtmlError | None = None,
    html_paths: Callable[[str], bool] = lambda _path: False,
) -> None:
    def as_html(request: Request) -> bool:
        return html_error is not None and html_paths(request.url.path)

    @app.exception_handler(ApexError)
    async def _apex(request: Request, exc: ApexError) -> Response:
        if html_error is not None and as_html(request):
            return html_error(request, exc.status_code, exc.message)
        body: dict[str, str] = {"message": exc.message}
        if isinstance(exc, ParseError):
            body = {"status": "parse_error", "message": exc.message}
        return JSONResponse(body, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        if html_error is not None and as_html(request):
            # Only path and query values reach here from the dashboard (forms are read by
            # hand): a malformed one names nothing that exists.
            return html_error(request, 404, "There is no such page.")
        return JSONResponse({"detail": _jsonable_errors(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else None
        message = message or _DEFAULT_MESSAGES.get(exc.status_code, "Error")
        if html_error is not None and as_html(request):
            return html_error(request, exc.status_code, message)
        return JSONResponse(
            {"message": message}, status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        if html_error is not None and as_html(request):
            return html_error(request, 500, "Something went wrong on our side; nothing was lost.")
        return JSONResponse(
            {
                "message": "Internal Server Error. Please contact support at "
                "contact@apexverify.com..."
            },
            status_code=500,
        )

    # Appended, not add_middleware (which prepends): innermost whatever installs follow.
    app.user_middleware.append(Middleware(CatchAllMiddleware, handler=_unexpected))
