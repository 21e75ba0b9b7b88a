"""CORS for publishable keys on ``POST /v1/unit``, the one endpoint a web page may call
(``docs/browser.md``). Plain ASGI, outside the rate limiter and the upload guard: it answers
preflights before they could be refused, and puts its headers on their 401/403/413/429 too,
so a form's script can read the message and ``Retry-After``.

- A preflight (``OPTIONS /v1/unit`` with ``Origin`` and ``Access-Control-Request-Method``)
  carries no key: the Fetch standard has browsers send no custom header and no credentials
  on it. So it is answered 204 when some active publishable key of this server lists the
  origin, 403 (and no CORS header, so the browser stops) otherwise. A key in a query
  parameter instead would put it into every access log and make the page send it twice;
  what this answer reveals (that an origin is registered) is harmless, and the request
  that follows is checked against its own key's origins (``accounts.authorize_unit``).
- The request itself: ``Access-Control-Allow-Origin`` is its origin (never ``*``: answers
  depend on the key), when its publishable key lists that origin. Without a key, or with an
  unknown or revoked one, when any publishable key does (the 401 is then readable).
- A secret key never gets a CORS header: it must never be used in a browser, and without
  the header no browser lets a page read what it answered. Every other path is untouched,
  so their preflights stay 405 as before.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..accounts import service as accounts
from ..accounts.keys import looks_publishable
from ..batches.context import Services
from ..web.headers import API_HEADERS

UNIT_PATH = "/v1/unit"
ALLOW_METHODS = "POST"
ALLOW_HEADERS = "Content-Type, X-API-Key"
# Not CORS-safelisted, so hidden from a page's script unless exposed: a form needs
# Retry-After to wait out a 429.
EXPOSE_HEADERS = "Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Used"
# How long a browser may reuse a preflight's answer (Chromium caps it at 7200).
MAX_AGE_SECONDS = 600
_PREFLIGHT_VARY = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"

NOT_REGISTERED = (
    "No publishable key of this server allows this origin: add it to the key's allowed "
    "origins (scheme://host[:port], exactly as the browser sends Origin)."
)
ONLY_POST = "Only POST /v1/unit can be called from a browser."


def _registered(services: Services, origin: str) -> bool:
    with services.store.read() as session:
        return accounts.origin_registered(session, origin)


def _allowed(services: Services, origin: str, api_key: str | None) -> bool:
    with services.store.read() as session:
        return accounts.cors_allowed(session, origin, api_key)


async def _preflight(services: Services, origin: str, method: str) -> Response:
    if method != ALLOW_METHODS:
        refusal = ONLY_POST
    elif not await asyncio.to_thread(_registered, services, origin):
        refusal = NOT_REGISTERED
    else:
        return Response(
            status_code=204,
            headers={
                **API_HEADERS,
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": ALLOW_METHODS,
                "Access-Control-Allow-Headers": ALLOW_HEADERS,
                "Access-Control-Max-Age": str(MAX_AGE_SECONDS),
                "Vary": _PREFLIGHT_VARY,
            },
        )
    return JSONResponse(
        {"message": refusal}, status_code=403, headers={**API_HEADERS, "Vary": _PREFLIGHT_VARY}
    )


def _with_cors(send: Send, origin: str | None) -> Send:
    """``send`` adding ``Vary: Origin`` (the answer depends on it) and, when ``origin`` is
    given, the headers that let a page at that origin read the answer."""

    async def send_with_cors(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            headers.add_vary_header("Origin")
            if origin is not None:
                headers["Access-Control-Allow-Origin"] = origin
                headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        await send(message)

    return send_with_cors


class CorsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != UNIT_PATH:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if not origin:  # not a cross-origin request from a browser
            await self.app(scope, receive, send)
            return
        services: Services = scope["app"].state.services
        requested = headers.get("access-control-request-method")
        if scope["method"] == "OPTIONS" and requested is not None:
            answer = await _preflight(services, origin, requested)
            await answer(scope, receive, send)
            return
        api_key = headers.get("x-api-key")
        if api_key and not looks_publishable(api_key):
            await self.app(scope, receive, send)  # a secret key: exactly as before
            return
        allowed = await asyncio.to_thread(_allowed, services, origin, api_key)
        await self.app(scope, receive, _with_cors(send, origin if allowed else None))


def install(app: FastAPI) -> None:
    app.add_middleware(CorsMiddleware)
