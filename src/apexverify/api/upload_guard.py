"""The guard in front of ``POST /v1/batch``: the API key and the declared length are checked
before a byte of the body is read, and the bytes are counted while they stream.

Why here and not in the route: FastAPI parses a form body before the route's dependencies run,
and Starlette's multipart parser spools every file part over 1 MiB to a temporary file, so
the key check (``deps.py``) and any size check in the route come after the whole body is on
disk. Here, an upload without a valid key is answered 401 unread, and one over
``APEXVERIFY_MAX_UPLOAD_BYTES`` 413 after at most that many bytes plus the envelope
(``web/uploads.py``). The route still authenticates as every route does: this guard only
refuses early, it grants nothing.

Every other ``/v1`` body (small JSON documents) is capped at :data:`JSON_BODY_LIMIT`, also
before it is read: a 400 MiB ``PUT`` without a key would otherwise be read into memory before
its 401.

Plain ASGI, inside the rate limiter (``middleware.py``): a refused upload still counts.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..accounts import service as accounts
from ..batches.context import Services
from ..errors import Unauthorized
from ..web.uploads import capped_receive, declared_too_large, too_large_message

UPLOAD_PATH = "/v1/batch"
# The server stops reading the connection after the answer instead of draining the body.
_CLOSE = {"Connection": "close"}


def _key_is_valid(services: Services, api_key: str) -> bool:
    with services.store.read() as session:
        return accounts.authenticate(session, api_key) is not None


async def _early_refusal(services: Services, headers: Headers) -> JSONResponse | None:
    """The answer to give without reading the body, if any."""
    api_key = headers.get("x-api-key")
    if not api_key or not await asyncio.to_thread(_key_is_valid, services, api_key):
        return JSONResponse(
            {"message": Unauthorized.default_message}, status_code=401, headers=_CLOSE
        )
    if declared_too_large(services.settings, headers):
        message = too_large_message(services.settings.max_upload_bytes)
        return JSONResponse({"message": message}, status_code=413, headers=_CLOSE)
    return None


# Every other /v1 body is a small JSON document (a unit, parameters, a key label): one that
# is larger is refused before it is read into memory (unauthenticated too).
JSON_BODY_LIMIT = 1024 * 1024
_JSON_TOO_LARGE = f"The request body is larger than {JSON_BODY_LIMIT} bytes."


class JsonBodyTooLarge(HTTPException):
    def __init__(self) -> None:
        super().__init__(413, _JSON_TOO_LARGE, headers=_CLOSE)


def _capped_json(receive: Receive) -> Receive:
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > JSON_BODY_LIMIT:
                raise JsonBodyTooLarge()
        return message

    return counted


async def _json_body(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    length = Headers(scope=scope).get("content-length", "")
    if length.isdigit() and int(length) > JSON_BODY_LIMIT:
        refused = JSONResponse({"message": _JSON_TOO_LARGE}, status_code=413, headers=_CLOSE)
        await refused(scope, receive, send)
        return
    await app(scope, _capped_json(receive), send)


class UploadGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST" or scope["path"] != UPLOAD_PATH:
            await _json_body(self.app, scope, receive, send)
            return
        services: Services = scope["app"].state.services
        headers = Headers(scope=scope)
        refusal = await _early_refusal(services, headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, capped_receive(receive, services.settings, headers), send)


def install(app: FastAPI) -> None:
    app.add_middleware(UploadGuard)
