"""A webhook receiver on loopback for the tests: a small HTTP server in a thread that keeps
every request and answers the statuses it is told (then 200), and the documented standard
library check of a signature."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int = 200

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    url: str
    statuses: list[int] = field(default_factory=list)  # answered in order, then ``default``
    default: int = 200
    received: list[Received] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def answer(self) -> int:
        return self.statuses.pop(0) if self.statuses else self.default

    def wait_for(self, count: int, timeout: float = 60.0) -> list[Received]:
        """Until ``count`` requests arrived (an upper bound: the test fails after it)."""
        with self.changed:
            self.changed.wait_for(lambda: len(self.received) >= count, timeout)
            assert len(self.received) >= count, [r.json for r in self.received]
            return list(self.received)

    def wait_until(self, done: Callable[[list[Received]], bool], timeout: float = 60.0) -> None:
        with self.changed:
            self.changed.wait_for(lambda: done(self.received), timeout)
            assert done(self.received), [(r.id, r.json["type"]) for r in self.received]


@contextmanager
def receiving(statuses: list[int] | None = None) -> Iterator[Receiver]:
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with receiver.changed:
                status = receiver.answer()
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.received.append(Received(self.path, headers, body, status))
                receiver.changed.notify_all()
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook", list(statuses or []))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def _documented_check() -> Callable[..., bool]:
    """The standard-library check docs/webhooks.md shows, run as written: the tests verify
    every delivery with it, so the page cannot drift from what the server signs."""
    doc = (Path(__file__).parents[2] / "docs" / "webhooks.md").read_text()
    code = re.search(r"```python\n(import base64, hashlib, hmac, time\n.*?)```", doc, re.S)
    assert code, "docs/webhooks.md lost its standard-library check"
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)
    check: Callable[..., bool] = namespace["verify"]
    return check


verify = _documented_check()
