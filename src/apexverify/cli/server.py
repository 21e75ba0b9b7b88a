"""uvicorn's HTTP protocol with a deadline on the request line and headers.

uvicorn times out idle keep-alive connections (``timeout_keep_alive``) but nothing else: a
client that opens a socket and sends a request one header byte at a time (slowloris) holds the
connection, and its slot of the event loop's file descriptors, for as long as it likes. Here a
request's line and headers must be complete within ``header_timeout`` seconds of their first
byte (of the connection, for the first request); otherwise the connection is closed. The
deadline is not reset by each byte that trickles in: that is the whole point. Reading the
body and running the app are not limited by it.

A subclass of uvicorn's httptools protocol (what uvicorn's "auto" picks with
``uvicorn[standard]``), hooking the parser's ``on_message_begin`` / ``on_headers_complete``.

:func:`serve` runs uvicorn with that protocol, the logging set-up of :mod:`apexverify.logs`
and the options of ``apexverify serve`` (worker processes, proxy headers).
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from .. import logs
from ..settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ..batches.context import Services


class HeaderTimeoutProtocol(HttpToolsProtocol):
    header_timeout: float = 10.0

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()  # a socket that never sends a byte is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    # httptools parser callbacks: the first byte of a request, and the end of its headers.
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._disarm_header_deadline()
        super().on_headers_complete()

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(
                self.header_timeout, self._header_deadline_passed
            )

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_deadline_passed(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        self.logger.info("Closing a connection whose request headers took too long.")
        if self.cycle is not None and not self.cycle.response_complete:
            # The late headers are a pipelined request's: finish the answer in flight first,
            # then close (as uvicorn's own graceful shutdown does).
            self.cycle.keep_alive = False
        else:
            self.transport.close()


def header_timeout_protocol(seconds: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class bound to ``seconds``: uvicorn builds protocols from a class alone."""

    class Bound(HeaderTimeoutProtocol):
        header_timeout = seconds

    return Bound


# -- running the server -------------------------------------------------------------------------


class WorkerHeaderTimeoutProtocol(HeaderTimeoutProtocol):
    """The protocol of ``serve --workers N``: uvicorn's worker processes import it by name
    (a class made by :func:`header_timeout_protocol` cannot be sent to them), and
    :func:`worker_app` sets its deadline from the settings in each process."""


@dataclass(frozen=True)
class ServeOptions:
    host: str
    port: int
    workers: int = 1
    # uvicorn's: trust X-Forwarded-For/-Proto from these addresses (None = uvicorn's default,
    # $FORWARDED_ALLOW_IPS or 127.0.0.1,::1), so the dashboard's Secure cookies and per-address
    # limits see the client behind a TLS proxy.
    proxy_headers: bool = True
    forwarded_allow_ips: str | None = None
    log_level: str = "INFO"
    log_format: str = "text"


# The GIL switch interval of a process that serves and runs the jobs (CPython's default is
# 5 ms): how long the event loop may wait for the GIL back from a busy job thread (a parse's
# loader, a chunk's writer) each time it gave it up, on a socket write, a SQLite step or
# os.urandom. A status answer gives it up several times. Under a 1M parse plus a verification
# 1 ms about halved the p90/p99 of the status endpoint (docs/benchmarks.md, "The status
# endpoint under load"); 0.5 ms measured no better.
SWITCH_INTERVAL_SECONDS = 0.001


def serve(services: Services, options: ServeOptions) -> None:
    """Serve until stopped: the app over ``services`` in this process, or ``options.workers``
    uvicorn worker processes that each build their own (scale-out mode only: the caller
    checked that jobs run in ``apexverify worker`` processes, not in these)."""
    import uvicorn

    common: dict[str, Any] = {
        "host": options.host,
        "port": options.port,
        # uvicorn's own loggers go through the same handler and formatter as ours, in its
        # worker processes too (each applies this configuration when it starts).
        "log_config": logs.dict_config(options.log_level, options.log_format),
        "log_level": options.log_level.lower(),
        "timeout_graceful_shutdown": 5,
        "proxy_headers": options.proxy_headers,
        "forwarded_allow_ips": options.forwarded_allow_ips,
    }
    if options.workers == 1:
        from ..app import create_app
        from ..composition import with_job_process

        with_job_process(services)
        if not services.queue.distributed:
            sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)

        timeout = services.settings.header_timeout_seconds
        app = create_app(services=services)
        uvicorn.run(app, http=header_timeout_protocol(timeout), **common)
        return
    services.store.dispose()  # built to check the configuration; each worker builds its own
    uvicorn.run(
        f"{__name__}:worker_app",
        factory=True,
        workers=options.workers,
        http=f"{__name__}:{WorkerHeaderTimeoutProtocol.__name__}",
        **common,
    )


def worker_app() -> FastAPI:
    """The app of one ``serve --workers N`` process (uvicorn calls it in each)."""
    from ..app import create_app

    settings = Settings.from_env()  # the parent's environment: it checked these already
    WorkerHeaderTimeoutProtocol.header_timeout = settings.header_timeout_seconds
    return create_app(settings)
