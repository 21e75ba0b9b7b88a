"""One logging set-up for ``serve``, ``worker`` and the admin CLI.

Every line has a UTC timestamp, a level and the logger's name, as text (the default) or as
one JSON object per line (``APEXVERIFY_LOG_FORMAT=json``): ``time``, ``level``, ``logger``,
``message``, then ``request_id`` on the lines logged while an HTTP request is handled (the
uvicorn access line included) and ``batch_uuid`` on the lines logged while a job of a batch
runs, and ``exception`` when there is one. Lines go to standard error: standard output is
left to what a command prints for a person (the demo key of ``serve --init-demo``).

uvicorn's loggers are routed through the same handler (:func:`dict_config` is also the
``log_config`` handed to uvicorn, so its worker processes log the same way).

No API key or webhook secret may reach a log line. The code never logs one; as defence in
depth the formatters redact anything shaped like one (:func:`redact`), wherever it comes
from (a query string in an access line, an exception's text).

This module sits at the settings layer: it imports nothing from the project, so the job
runners (``jobs/``) and the web app can both set its context variables.
"""

from __future__ import annotations

import json
import logging
import logging.config
import random
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("text", "json")

# The request being handled and the batch whose job is running, for the lines logged meanwhile.
REQUEST_ID: ContextVar[str | None] = ContextVar("apexverify_request_id", default=None)
BATCH_UUID: ContextVar[str | None] = ContextVar("apexverify_batch_uuid", default=None)

# API keys (apx_ + 43 URL-safe characters) and webhook signing secrets (whsec_...). Six
# characters are enough to match a key's displayed prefix too.
_SECRET = re.compile(r"(apx|whsec)_[A-Za-z0-9_\-]{6,}")

# Libraries whose INFO/DEBUG lines carry request URLs or headers (an HLR lookup's query
# string, a signed S3 request): never below WARNING, whatever the level asked for.
_QUIET = ("httpx", "httpcore", "botocore", "boto3", "s3transfer", "urllib3")


def redact(text: str) -> str:
    """``text`` with every API key or webhook secret replaced by ``apx_[redacted]``."""
    return _SECRET.sub(lambda found: f"{found.group(1)}_[redacted]", text)


def _time(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ContextFilter(logging.Filter):
    """Puts the current request id and batch uuid on every record the handler sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        record.batch_uuid = BATCH_UUID.get()
        return True


class DropChatter(logging.Filter):
    """Drops the two INFO lines alembic logs each time it looks at a database ("Context impl
    SQLiteImpl.", "Will assume transactional DDL."): several per command, and no news. Its
    "Running upgrade 0004 -> 0005" lines stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.name == "alembic.runtime.migration"
            and record.levelno == logging.INFO
            and str(record.msg).startswith(("Context impl", "Will assume"))
        )


def _context(record: logging.LogRecord) -> dict[str, str]:
    fields = {"request_id": getattr(record, "request_id", None)}
    fields["batch_uuid"] = getattr(record, "batch_uuid", None)
    return {name: value for name, value in fields.items() if value}


class TextFormatter(logging.Formatter):
    """``2025-05-01T12:00:00.123Z INFO     uvicorn.access: ... [request_id=...]``"""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_time(record)} {record.levelname:<8} {record.name}: {record.getMessage()}"
        context = _context(record)
        if context:
            line += " [" + " ".join(f"{k}={v}" for k, v in context.items()) + "]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a multi-line exception stays inside its string."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            **_context(record),
        }
        if record.exc_info:
            data["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            data["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(data, ensure_ascii=False, default=str)


def dict_config(level: str = "INFO", fmt: str = "text") -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of this set-up (also uvicorn's ``log_config``)."""
    level = level.upper()
    if level not in LEVELS or fmt not in FORMATS:
        raise ValueError(f"log level must be one of {LEVELS} and format one of {FORMATS}")
    formatter = JsonFormatter if fmt == "json" else TextFormatter
    quiet = max(logging.WARNING, logging.getLevelName(level))
    # uvicorn's loggers get no handler of their own: they propagate to the root's.
    uvicorn = {"level": level, "handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": f"{__name__}.ContextFilter"},
            "chatter": {"()": f"{__name__}.DropChatter"},
        },
        "formatters": {"main": {"()": f"{__name__}.{formatter.__name__}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "main",
                "filters": ["context", "chatter"],
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "uvicorn": uvicorn,
            "uvicorn.error": uvicorn,
            "uvicorn.access": uvicorn,
            **{name: {"level": logging.getLevelName(quiet)} for name in _QUIET},
        },
    }


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """Replace whatever logging set-up the process had with this one."""
    logging.config.dictConfig(dict_config(level, fmt))


@contextmanager
def job_context(args: Mapping[str, Any]) -> Iterator[None]:
    """Around a job: its lines carry the ``batch_uuid`` of its arguments, if it has one."""
    value = args.get("batch_uuid")
    token = BATCH_UUID.set(value if isinstance(value, str) else None)
    try:
        yield
    finally:
        BATCH_UUID.reset(token)


# -- the request id of HTTP requests ----------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A request id a proxy set (nginx's $request_id, an upstream's X-Request-Id) is kept when it
# is short and plain; anything else is replaced, so a client cannot write into the logs.
_INCOMING = re.compile(r"[A-Za-z0-9._:\-]{8,64}")


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _INCOMING.fullmatch(text) else None
    return None


def _new_request_id() -> str:
    """16 hex digits. A request id must be unique, not secret: the pseudo-random generator
    (reseeded in forked children) rather than ``secrets``, whose system call releases the GIL
    on every request of a busy event loop, which then waits for the jobs' threads to give it
    back (py-spy under the status endpoint's load, docs/benchmarks.md)."""
    return f"{random.getrandbits(64):016x}"


class RequestIdMiddleware:
    """Plain ASGI: a request id for each HTTP request, in ``REQUEST_ID`` while the request is
    handled (so uvicorn's access line carries it) and in the ``X-Request-Id`` response
    header, so a client's report can be matched with the server's lines."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope) or _new_request_id()
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)


__all__ = [
    "BATCH_UUID",
    "FORMATS",
    "LEVELS",
    "REQUEST_ID",
    "ContextFilter",
    "JsonFormatter",
    "RequestIdMiddleware",
    "TextFormatter",
    "configure",
    "dict_config",
    "job_context",
    "redact",
]
