"""One place that turns errors into the spec's bodies: ``{"message": ...}`` for every status
except 422, which keeps FastAPI's ``{"detail": [...]}`` (inputs echoed as JSON values) and adds
a ``message`` naming the fields. Nothing ever leaks a traceback."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import ApexError, ParseError, StorageFull
from ..storage.tempfiles import is_disk_full

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


# A 422 stays small whatever was sent: echoed values are cut to these sizes.
_MAX_TEXT = 200
_MAX_ITEMS = 20
_MAX_DEPTH = 4
_MAX_NAMED = 5  # errors named in the message; the detail list has them all
# Beyond 64 bits an integer is echoed as its digits: many JSON readers (JavaScript's among
# them) would silently round it as a number.
_MAX_JSON_INT = 2**63


def _text(value: str) -> str:
    return value if len(value) <= _MAX_TEXT else value[:_MAX_TEXT] + "…"


def _number(value: int | float) -> int | float | str:
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        # JSON has no NaN or infinity. Strings, not null: the client sees what it sent,
        # spelled as JavaScript spells it.
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if -_MAX_JSON_INT < value < _MAX_JSON_INT:
        return value
    try:
        return _text(str(value))
    except ValueError:  # more digits than Python converts (sys.set_int_max_str_digits)
        return f"an integer of about {int(value.bit_length() * math.log10(2))} digits"


def json_value(value: Any, depth: int = 0) -> Any:
    """Any echoed input or context value as a JSON value: numbers stay numbers when JSON can
    hold them, bytes are decoded, containers are cut to a few items, anything else is its
    text. Never a Python repr of a container."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return _text(bytes(value[: _MAX_TEXT * 4]).decode("utf-8", errors="replace"))
    if isinstance(value, Mapping | list | tuple | set | frozenset) and depth >= _MAX_DEPTH:
        return "…"
    if isinstance(value, Mapping):
        items = list(value.items())
        return {str(k): json_value(v, depth + 1) for k, v in items[:_MAX_ITEMS]}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_value(v, depth + 1) for v in list(value)[:_MAX_ITEMS]]
    if isinstance(value, datetime | date):
        return value.isoformat()
    try:
        return _text(str(value))
    except Exception:  # a broken __str__ must not turn a 422 into a 500
        return type(value).__name__


def _jsonable_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors():
        item: dict[str, Any] = {
            "loc": [p if isinstance(p, int | str) else str(p) for p in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        if "input" in error:
            item["input"] = json_value(error["input"])
        if "ctx" in error:
            item["ctx"] = {str(k): json_value(v) for k, v in dict(error["ctx"]).items()}
        errors.append(item)
    return errors


def validation_message(errors: list[dict[str, Any]]) -> str:
    """One sentence naming each field and its problem, for clients that show only a
    ``message`` (n8n, Pipedream): "Invalid request: body.type: Input should be ..."."""
    named = [".".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in errors[:_MAX_NAMED]]
    more = len(errors) - len(named)
    if more > 0:
        named.append(f"and {more} more")
    return "Invalid request: " + ("; ".join(named) or "the request is not valid") + "."


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """Every method the path supports (RFC 9110: Allow lists them all). Starlette's 405 names
    only those of the first route matching the path, and FastAPI has a route per method, so
    each method is tried against the app's routes on a scope of its own."""
    allowed = []
    for method in _METHODS:
        probe = {
            "type": "http",
            "path": request.scope["path"],
            "root_path": request.scope.get("root_path", ""),
            "method": method,
            "headers": [],
            "query_string": b"",
        }
        if any(route.matches(probe)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


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
        detail = _jsonable_errors(exc)
        return JSONResponse(
            {"detail": detail, "message": validation_message(detail)}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and is_disk_full(exc):
            # FastAPI reports a body it could not spool as unreadable: it is our disk.
            exc = StarletteHTTPException(507, StorageFull().message)
        message = exc.detail if isinstance(exc.detail, str) else None
        message = message or _DEFAULT_MESSAGES.get(exc.status_code, "Error")
        if html_error is not None and as_html(request):
            return html_error(request, exc.status_code, message)
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": _allowed_methods(request)}
        return JSONResponse({"message": message}, status_code=exc.status_code, headers=headers)

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
