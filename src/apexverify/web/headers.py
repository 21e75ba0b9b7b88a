"""Fixed response headers for every answer under a path prefix, as plain ASGI middleware
(``BaseHTTPMiddleware`` costs the event loop; ``docs/benchmarks.md``).

The v1 API's answers carry account data (balances, results, exports): no browser may sniff a
JSON body into HTML, and no shared cache may keep one. Errors and 429s included, which is why
this wraps the rate limiter rather than the routes.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_HEADERS: Mapping[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class FixedHeadersMiddleware:
    def __init__(self, app: ASGIApp, prefix: str, headers: Mapping[str, str]) -> None:
        self.app = app
        self.prefix = prefix
        self.headers = dict(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    response_headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
