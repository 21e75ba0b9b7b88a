"""The one logging set-up (apexverify.logs): timestamps, levels, JSON lines with the request
id and the batch uuid, uvicorn's lines through the same formatter, and no API key in any
line, checked on a live server's whole log."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from apexverify import logs
from tests.api.helpers import Api
from tests.support.server import LiveServer

KEY = "apx_" + "k" * 43
SECRET = "whsec_" + "s" * 32
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    """A logger of its own with the set-up's filter, and a buffer in place of stderr."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(logs.ContextFilter())
    logger = logging.getLogger("apexverify.test_logging")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield logger, buffer, handler
    logger.removeHandler(handler)


def test_redact_hides_keys_secrets_and_key_prefixes() -> None:
    text = f"key={KEY} pub=apx_pub_abcdefgh secret={SECRET} shown=apx_ab12cd ok=apx_"
    redacted = logs.redact(text)
    assert KEY not in redacted
    assert SECRET not in redacted
    assert "apx_ab12cd" not in redacted
    assert "apx_pub_abcdefgh" not in redacted
    assert redacted.count("apx_[redacted]") == 3
    assert "whsec_[redacted]" in redacted
    assert redacted.endswith("ok=apx_")  # a bare prefix names no key


def test_json_lines_carry_context_and_stay_one_line(captured: Any) -> None:
    logger, buffer, handler = captured
    handler.setFormatter(logs.JsonFormatter())
    token = logs.REQUEST_ID.set("req-12345678")
    try:
        with logs.job_context({"batch_uuid": "b-1", "ids": [1, 2]}):
            try:
                raise ValueError(f"refused {KEY}")
            except ValueError:
                logger.exception("job failed for %s", KEY)
        logger.info("after the job")
    finally:
        logs.REQUEST_ID.reset(token)
    logger.warning("outside")
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 3  # the traceback stays inside its line
    first, second, third = (json.loads(line) for line in lines)
    assert ISO_UTC.match(first["time"])
    assert (first["level"], first["logger"]) == ("ERROR", "apexverify.test_logging")
    assert first["message"] == "job failed for apx_[redacted]"
    assert (first["request_id"], first["batch_uuid"]) == ("req-12345678", "b-1")
    assert "ValueError: refused apx_[redacted]" in first["exception"]
    assert "batch_uuid" not in second
    assert second["request_id"] == "req-12345678"
    assert set(third) == {"time", "level", "logger", "message"}
    assert KEY not in buffer.getvalue()


def test_text_lines_have_a_timestamp_a_level_and_the_context(captured: Any) -> None:
    logger, buffer, handler = captured
    handler.setFormatter(logs.TextFormatter())
    with logs.job_context({"batch_uuid": "b-2"}):
        logger.info("verifying with %s", SECRET)
    line = buffer.getvalue().rstrip("\n")
    stamp, level, rest = line.split(maxsplit=2)
    assert ISO_UTC.match(stamp)
    assert level == "INFO"
    assert rest == "apexverify.test_logging: verifying with whsec_[redacted] [batch_uuid=b-2]"


def test_the_configuration_routes_uvicorn_and_quiets_http_clients() -> None:
    config = logs.dict_config("debug", "json")
    assert config["root"]["level"] == "DEBUG"
    assert config["formatters"]["main"]["()"].endswith("JsonFormatter")
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        assert config["loggers"][name] == {"level": "DEBUG", "handlers": [], "propagate": True}
    assert config["loggers"]["httpx"]["level"] == "WARNING"  # its lines carry request URLs
    with pytest.raises(ValueError, match="log level"):
        logs.dict_config("chatty", "text")


def asgi_call(headers: list[tuple[bytes, bytes]]) -> tuple[dict[str, Any], str | None]:
    """Run one request through RequestIdMiddleware; returns the response start message and
    the request id the app saw."""
    seen: dict[str, str | None] = {}
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["id"] = logs.REQUEST_ID.get()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers}
    asyncio.run(logs.RequestIdMiddleware(app)(scope, receive, send))
    assert logs.REQUEST_ID.get() is None  # reset once the request is done
    return sent[0], seen["id"]


def test_every_answer_carries_the_request_id_its_lines_had() -> None:
    start, seen = asgi_call([])
    assert seen
    assert re.fullmatch(r"[0-9a-f]{16}", seen)
    assert (b"x-request-id", seen.encode()) in start["headers"]
    # A proxy's id (nginx's $request_id) is kept; one that could write into the logs is not.
    _, kept = asgi_call([(b"x-request-id", b"0123456789abcdef0123456789abcdef")])
    assert kept == "0123456789abcdef0123456789abcdef"
    _, replaced = asgi_call([(b"x-request-id", b'x" injected="1')])
    assert replaced
    assert replaced != 'x" injected="1'


def test_a_live_servers_json_log_parses_line_by_line_and_holds_no_key(
    make_server: Any,
) -> None:
    server: LiveServer = make_server(APEXVERIFY_LOG_FORMAT="json")
    key, _account = server.create_account(sandbox=True)
    api = Api(server.base_url, key)
    batch_uuid = api.run("valid@example.com\ninvalid@example.com\n", name="logged")
    answer = api.client.get("/v1/account/credits")
    request_id = answer.headers["x-request-id"]
    # A key where it does not belong (a query string): the access line must not show it.
    assert api.client.get("/v1/batch", params={"api_key": key}).status_code in (200, 422)
    refused = api.client.get("/v1/batch", headers={"X-API-Key": key + "x"})
    assert refused.status_code == 401
    server.stop()

    text = (server.data_dir / "server.log").read_text()
    assert key not in text
    lines = [json.loads(line) for line in text.splitlines()]  # every line is one object
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert all(ISO_UTC.match(line["time"]) for line in lines)
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert access
    assert all(line.get("request_id") for line in access)
    mine = [line for line in access if line["request_id"] == request_id]
    assert len(mine) == 1
    assert "/v1/account/credits" in mine[0]["message"]
    assert any("apx_[redacted]" in line["message"] for line in access)
    jobs = [line for line in lines if line.get("batch_uuid") == batch_uuid]
    assert jobs, "no line of the batch's jobs names it"
    assert any(line["logger"] == "uvicorn.error" for line in lines)  # uvicorn's own, as JSON


async def test_both_job_runners_put_the_batch_in_the_logging_context() -> None:
    from apexverify.jobs.inprocess import InProcessQueue
    from apexverify.jobs.procrastinate_queue import ProcrastinateQueue
    from apexverify.store.db import Store

    seen: list[str | None] = []

    async def task(**_args: Any) -> None:
        seen.append(logs.BATCH_UUID.get())

    inprocess = InProcessQueue()
    inprocess.register("t", task)
    await inprocess.start()
    try:
        inprocess.defer("t", {"batch_uuid": "b-in"})
        inprocess.defer("t", {"other": "x"})
        await inprocess.drain()
    finally:
        await inprocess.stop()
    # procrastinate runs what was registered with its app (no database needed to call it).
    store = Store("postgresql://nobody@127.0.0.1:1/none")
    scaled = ProcrastinateQueue(store)
    scaled.register("t", task)
    await scaled.app.tasks["t"].func(batch_uuid="b-pg")
    store.dispose()
    assert set(seen[:2]) == {"b-in", None}  # in-process jobs may interleave
    assert seen[2] == "b-pg"
    assert logs.BATCH_UUID.get() is None
