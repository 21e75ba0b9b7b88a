"""``GET /v1/batch/{uuid}`` and ``GET /v1/batch/{uuid}/details`` without FastAPI's machinery.

These two are what clients poll, many times a second per running batch. Through the routes
(``routers/batches.py``) each answer cost the event loop's thread about 6 ms: FastAPI's router
and dependency solving, three hops to the thread pool (key, session, endpoint), two ORM
queries and the encoder (``docs/benchmarks.md``, "The status endpoint under load"). Here, as
plain ASGI inside every other middleware (rate limits, fixed headers, request id, metrics and
the catch-all 500 all still apply), a successful answer is: the key's id from the process's
cache of keys (``accounts/key_cache.py``), one indexed read of the batch row joined to the
key's row (so a key revoked in any process is refused at once) on the event loop, straight
over SQLite's driver (``ActiveKeyRowReader``; PostgreSQL's read goes through SQLAlchemy in a
thread, it is a network round trip), the same views the routes use, and orjson.

Only the success is answered here. Anything else (no key, an unknown, revoked or publishable
key, no such batch, a UUID not in its canonical lower-case form) falls through to the routes,
which answer it exactly as documented (401/403/404/422): their bodies stay the routes' own, and
the cost of a second look-up is paid only by failures. The success body is byte for byte the
routes' (``tests/api/test_status_fast_path.py`` compares them).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from functools import partial
from typing import Any, cast

import orjson
from fastapi import FastAPI
from sqlalchemy import Row
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from ..accounts import service as accounts
from ..accounts.key_cache import KeyGrant
from ..accounts.keys import KeyKind
from ..batches import views
from ..batches.context import Services
from ..batches.repository import batches as batch_rows
from ..store.models import Batch

# The canonical form only (what str(UUID) gives): other spellings FastAPI also accepts are
# rare, and the routes answer them.
_PATH = re.compile(
    r"/v1/batch/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(/details)?"
)
_API_KEY = b"x-api-key"
_JSON_HEADERS = b"application/json"


def _api_key(scope: Scope) -> str | None:
    # The first X-API-Key header, as Starlette's Headers.get (and so the routes) would take.
    for name, value in scope["headers"]:
        if name == _API_KEY:
            return cast(bytes, value).decode("latin-1")
    return None


def _read_row(services: Services, key_id: str, batch_uuid: str) -> Row[Any] | None:
    with services.store.engine.connect() as connection:
        return batch_rows.row_for_active_key(connection, key_id, batch_uuid)


RowReader = Callable[[str, str], Any]


def _body(reader: RowReader, grant: KeyGrant, batch_uuid: str, details: bool) -> bytes | None:
    """The 200 answer's body, or None when the routes must answer (no such batch for the
    key's account, or the key was revoked since it was remembered)."""
    row = reader(grant.key_id, batch_uuid)
    if row is None:
        return None
    # A row of the batches table carries every column the views read, under the same names.
    batch = cast(Batch, row)
    view = views.details_view(batch) if details else views.status_view(batch)
    # orjson writes these bodies as the routes' json.dumps(separators=(",", ":"),
    # ensure_ascii=False) does: str, int and float values (credits are whole thousandths,
    # which neither writes with an exponent), None and booleans only.
    return orjson.dumps(view)


class StatusFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._sqlite_reader: batch_rows.ActiveKeyRowReader | None = None

    def _sqlite(self, services: Services) -> batch_rows.ActiveKeyRowReader:
        if self._sqlite_reader is None:
            self._sqlite_reader = batch_rows.ActiveKeyRowReader(services.store.engine)
        return self._sqlite_reader

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (
            _PATH.fullmatch(scope["path"])
            if scope["type"] == "http" and scope["method"] == "GET"
            else None
        )
        api_key = _api_key(scope) if match else None
        if match is None or not api_key:
            await self.app(scope, receive, send)
            return
        services: Services = scope["app"].state.services
        batch_uuid, details = match.group(1), match.group(2) is not None
        body = None
        if services.store.is_sqlite:
            # One read of one row by unique indexes, in WAL mode (never blocked by writers):
            # tens of microseconds, less than a hop to the thread pool and back.
            grant = accounts.key_grant(services.store.read, api_key)
            if grant is not None and grant.kind == KeyKind.SECRET:
                body = _body(self._sqlite(services).read, grant, batch_uuid, details)
        else:
            body = await asyncio.to_thread(_in_thread, services, api_key, batch_uuid, details)
        if body is None:
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", _JSON_HEADERS),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _in_thread(services: Services, api_key: str, batch_uuid: str, details: bool) -> bytes | None:
    """PostgreSQL: the same answer through a SQLAlchemy connection, off the event loop."""
    grant = accounts.key_grant(services.store.read, api_key)
    if grant is None or grant.kind != KeyKind.SECRET:
        return None
    return _body(partial(_read_row, services), grant, batch_uuid, details)


def install(app: FastAPI) -> None:
    # Appended, not add_middleware (which prepends): innermost, inside the catch-all 500
    # (web/errors.py) and the rate limiter, so its answers get their headers and counts.
    app.user_middleware.append(Middleware(StatusFastPath))
