"""HTTP hardening: slow headers are cut off, API answers say nosniff / no-store, a connection
outlives the errors it carried (handled or not), and /metrics wants its bearer token."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from apexverify.accounts import service as accounts_service
from apexverify.app import create_app
from apexverify.cli.server import header_timeout_protocol
from apexverify.web.errors import CatchAllMiddleware
from tests.support.fast import Lab
from tests.support.server import LiveServer, free_port, start_server

METRICS_TOKEN = "metrics-test-token"
DOCUMENTED_500 = {
    "message": "Internal Server Error. Please contact support at contact@apexverify.com..."
}


@pytest.fixture(scope="module")
def hardened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path_factory.mktemp("hardened"),
        APEXVERIFY_HEADER_TIMEOUT_SECONDS="1",
        APEXVERIFY_METRICS_TOKEN=METRICS_TOKEN,
        # Five requests per key, then (nearly) no refill: a 429 five requests in.
        APEXVERIFY_RATE_LIMIT_CAPACITY="5",
        APEXVERIFY_RATE_LIMIT_REFILL_PER_SECOND="0.01",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def key(hardened: LiveServer) -> str:
    return hardened.create_account(sandbox=True)[0]


def assert_api_headers(headers: httpx.Headers | http.client.HTTPMessage) -> None:
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"


def closed_while_trickling(sock: socket.socket, chunks: list[bytes]) -> bool:
    """Send ``chunks`` a fifth of a second apart; True as soon as the server hangs up."""
    sock.settimeout(0.2)
    for chunk in chunks:
        try:
            sock.sendall(chunk)
            if sock.recv(1024) == b"":
                return True
            raise AssertionError("the server answered a request whose headers never ended")
        except TimeoutError:
            continue  # still open: trickle on
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


# -- slow headers (slowloris) ----------------------------------------------------------------


def test_a_request_whose_headers_trickle_in_is_closed(hardened: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", hardened.port)) as sock:
        sock.sendall(b"GET /v1/account/credits HTTP/1.1\r\nHost: x\r\n")
        # 30 header bytes over ~6 s, each well inside any idle timeout: closed at the 1 s
        # header deadline, long before the headers could end.
        assert closed_while_trickling(sock, [b"X-Slow: "] + [b"a"] * 30)


def test_a_socket_that_never_sends_a_request_is_closed(hardened: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", hardened.port)) as sock:
        sock.settimeout(10)  # a bound for a broken server, not the expectation (1 s)
        assert sock.recv(1024) == b""


def test_a_prompt_request_on_a_kept_connection_is_answered_after_the_deadline(
    hardened: LiveServer,
) -> None:
    # The deadline counts from a request's first byte: a keep-alive connection whose next
    # request comes 1.2 s later is still served (the idle limit is 5 s).
    conn = http.client.HTTPConnection("127.0.0.1", hardened.port, timeout=10)
    try:
        for pause in (1.2, 0):
            conn.request("GET", "/healthz")
            answer = conn.getresponse()
            answer.read()
            assert (answer.status, answer.will_close) == (200, False)
            time.sleep(pause)
    finally:
        conn.close()


# -- nosniff / no-store on every API answer ----------------------------------------------------


def test_api_answers_say_nosniff_and_no_store(hardened: LiveServer, key: str) -> None:
    base = hardened.base_url
    with httpx.Client(base_url=base, headers={"X-Api-Key": key}) as client:
        answers = [
            client.get("/v1/account/credits"),  # 200
            client.get("/v1/batch/00000000-0000-0000-0000-000000000000"),  # 404
            client.get("/v1/batch/not-a-uuid"),  # 422
        ]
    answers.append(httpx.get(f"{base}/v1/account/credits"))  # 401, no key
    assert [a.status_code for a in answers] == [200, 404, 422, 401]
    for answer in answers:
        assert_api_headers(answer.headers)


def test_a_429_says_nosniff_and_no_store(hardened: LiveServer) -> None:
    limited_key = hardened.create_account(sandbox=True)[0]
    with httpx.Client(base_url=hardened.base_url, headers={"X-Api-Key": limited_key}) as client:
        codes = [client.get("/v1/account/credits").status_code for _ in range(5)]
        refused = client.get("/v1/account/credits")
    assert codes == [200] * 5
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "100"  # the next token, at 0.01 per second
    assert_api_headers(refused.headers)


# -- connections outlive errors ---------------------------------------------------------------


def test_a_handled_4xx_keeps_the_pooled_connection(hardened: LiveServer, key: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", hardened.port, timeout=10)
    try:
        conn.request("GET", "/v1/account/credits")  # no key: 401
        refused = conn.getresponse()
        refused.read()
        sock = conn.sock
        assert (refused.status, refused.will_close) == (401, False)
        conn.request("GET", "/v1/account/credits", headers={"X-Api-Key": key})
        answer = conn.getresponse()
        answer.read()
        assert answer.status == 200
        assert conn.sock is sock  # the same socket: http.client reconnects only when closed
    finally:
        conn.close()


@pytest.fixture
def broken_balances(monkeypatch: pytest.MonkeyPatch) -> None:
    """The credits endpoint fails once, as it would if the database went away mid-request."""
    real = accounts_service.balances
    calls: list[object] = []

    def flaky(*args: object, **kwargs: object) -> dict[str, float]:
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("the database went away")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(accounts_service, "balances", flaky)


async def test_an_unhandled_error_is_the_documented_500_and_not_raised(
    lab: Lab, broken_balances: None
) -> None:
    _account_id, api_key = lab.account()
    # raise_app_exceptions (the default): the test fails if the app re-raises after its 500,
    # which is what makes uvicorn drop the connection.
    transport = httpx.ASGITransport(app=create_app(services=lab.services))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get("/v1/account/credits", headers={"X-Api-Key": api_key})
        assert answer.status_code == 500
        assert answer.json() == DOCUMENTED_500
        assert_api_headers(answer.headers)
        assert answer.headers["X-RateLimit-Limit"] == "180"
        assert (await client.get("/v1/account/credits", headers={"X-Api-Key": api_key})).json()


@contextmanager
def serving(app: ASGIApp) -> Iterator[int]:
    """``app`` under uvicorn with the serve command's protocol, in a thread; yields the port."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=header_timeout_protocol(10),
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            time.sleep(0.01)
        assert server.started, "uvicorn did not start"
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


async def test_the_connection_survives_an_unhandled_500(lab: Lab, broken_balances: None) -> None:
    # Blocking calls in an async test (the lab is async): the server runs on its own loop.
    _account_id, api_key = lab.account()
    with serving(create_app(services=lab.services)) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/v1/account/credits", headers={"X-Api-Key": api_key})
            failed = conn.getresponse()
            assert failed.status == 500
            assert failed.read() == (
                b'{"message":"Internal Server Error. Please contact support at '
                b'contact@apexverify.com..."}'
            )
            assert failed.getheader("connection") is None  # no "close"
            sock = conn.sock
            conn.request("GET", "/v1/account/credits", headers={"X-Api-Key": api_key})
            answer = conn.getresponse()
            answer.read()
            assert answer.status == 200
            assert conn.sock is sock
        finally:
            conn.close()


async def test_an_error_after_the_answer_started_still_propagates() -> None:
    # Past the start of a response no 500 can be sent: closing the connection is the only
    # way left to say the body is cut short, so the catch-all lets it through.
    async def half_answer(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("the export broke mid-stream")

    async def never(_request: Request, _exc: Exception) -> Response:
        raise AssertionError("the catch-all must not answer twice")

    app = CatchAllMiddleware(half_answer, handler=never)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        with pytest.raises(RuntimeError, match="mid-stream"):
            await client.get("/")


# -- /metrics ----------------------------------------------------------------------------------


def test_metrics_want_the_bearer_token(hardened: LiveServer) -> None:
    url = f"{hardened.base_url}/metrics"
    assert httpx.get(url).status_code == 401
    wrong = httpx.get(url, headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
    right = httpx.get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert right.status_code == 200
    assert "apexverify_http_requests_total" in right.text
