"""The SDK's fast tier: both clients against ``httpx.MockTransport`` (no server). Retries
(Retry-After, idempotent only), error mapping, arguments checked before sending, streamed
uploads and exports, the incremental JSON reader, and verify_file's one-parse plan."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import apexverify.client as sdk
from apexverify.client import AsyncClient, Client, EmailResult, PhoneResult, Stats
from apexverify.client._base import retry_after_seconds
from apexverify.client._jsonstream import JSONStreamError, ObjectStream

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that records each request and answers from a list (a fresh
    copy of each answer: a client takes over the stream of the response it receives)."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


def client_for(handler: Handler, **options: Any) -> tuple[Client, list[float]]:
    slept: list[float] = []
    client = Client("k", "http://api.test", transport=httpx.MockTransport(handler), **options)
    client._sleep = slept.append  # type: ignore[assignment]
    return client, slept


def async_client_for(handler: Handler, **options: Any) -> tuple[AsyncClient, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    client = AsyncClient("k", "http://api.test", transport=httpx.MockTransport(handler), **options)
    client._sleep = sleep  # type: ignore[assignment]
    return client, slept


CREDITS = httpx.Response(200, json={"email_credit": 5, "phone_credit": 1})


# Retries ---------------------------------------------------------------------------------
def test_429_waits_retry_after_then_succeeds_even_for_post() -> None:
    limited = httpx.Response(429, headers={"Retry-After": "3"}, json={"message": "slow down"})
    launched = httpx.Response(200, json={"status": "ok"})
    handler = Recorder(limited, limited, launched)
    client, slept = client_for(handler)
    with client:
        assert client.launch("u1") == "ok"
    assert slept == [3.0, 3.0]
    assert [r.method for r in handler.requests] == ["POST"] * 3
    assert handler.requests[0].headers["X-API-Key"] == "k"


def test_429_gives_up_past_max_rate_limit_wait() -> None:
    handler = Recorder(httpx.Response(429, headers={"Retry-After": "50"}, json={"message": "x"}))
    client, slept = client_for(handler, max_rate_limit_wait=120)
    with client, pytest.raises(sdk.RateLimited) as caught:
        client.credits()
    assert slept == [50.0, 50.0]  # a third wait would pass 120 s
    assert caught.value.retry_after == 50.0
    assert caught.value.message == "x"


def test_retry_after_as_an_http_date() -> None:
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("soon") is None


def test_connection_errors_retry_get_with_backoff_but_never_post() -> None:
    down = httpx.ConnectError("refused")
    handler = Recorder(down, down, CREDITS)
    client, slept = client_for(handler, max_retries=4)
    with client:
        assert client.credits().email_credit == 5.0
    assert slept == [0.5, 1.0]

    handler = Recorder(down)
    client, slept = client_for(handler, max_retries=4)
    with client, pytest.raises(sdk.TransportError):
        client.launch("u1")
    assert len(handler.requests) == 1  # a lost answer may hide a launch: never sent twice
    assert slept == []

    handler = Recorder(down)
    client, slept = client_for(handler, max_retries=2)
    with client, pytest.raises(sdk.TransportError):
        client.status("u1")
    assert len(handler.requests) == 3


def test_503_retries_idempotent_calls_only() -> None:
    busy = httpx.Response(503, json={"message": "busy"})
    handler = Recorder(busy, CREDITS)
    client, slept = client_for(handler)
    with client:
        assert client.credits().phone_credit == 1.0
    assert slept == [0.5]
    handler = Recorder(busy)
    client, _ = client_for(handler)
    with client, pytest.raises(sdk.ServerError, match="busy"):
        client.cancel("u1")
    assert len(handler.requests) == 1


async def test_async_client_follows_the_same_policy() -> None:
    limited = httpx.Response(429, headers={"Retry-After": "2"}, json={"message": "slow"})
    down = httpx.ConnectError("refused")
    handler = Recorder(limited, down, CREDITS)
    client, slept = async_client_for(handler)
    async with client:
        assert (await client.credits()).email_credit == 5.0
    assert slept == [2.0, 0.5]
    handler = Recorder(down)
    client, _ = async_client_for(handler)
    async with client:
        with pytest.raises(sdk.TransportError):
            await client.launch("u1")
    assert len(handler.requests) == 1


# Error mapping -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("response", "error", "message"),
    [
        (
            httpx.Response(422, json={"detail": [], "message": "Invalid request: body.x: bad"}),
            sdk.ValidationError,
            "Invalid request: body.x: bad",
        ),
        (
            httpx.Response(400, json={"status": "parse_error", "message": "NUL bytes"}),
            sdk.ParseError,
            "NUL bytes",
        ),
        (httpx.Response(401, json={"message": "Unauthorized"}), sdk.AuthenticationError, "Unauth"),
        (httpx.Response(402, json={"message": "short"}), sdk.InsufficientCredits, "short"),
        (httpx.Response(404, json={"message": "no such batch"}), sdk.NotFound, "no such"),
        (httpx.Response(409, json={"message": "already"}), sdk.APIError, "already"),
        (httpx.Response(500, text="<html>oops</html>"), sdk.ServerError, "oops"),
    ],
)
def test_errors_carry_the_servers_message(
    response: httpx.Response, error: type[sdk.APIError], message: str
) -> None:
    client, _ = client_for(Recorder(response), max_retries=0)
    with client, pytest.raises(error, match=message) as caught:
        client.delete("u1")
    assert caught.value.status_code == response.status_code


# Arguments checked before sending --------------------------------------------------------
def test_unknown_and_out_of_range_parameters_send_nothing(tmp_path: Path) -> None:
    source = tmp_path / "c.txt"
    source.write_text("a@b.com\n")
    handler = Recorder(CREDITS)
    client, _ = client_for(handler)
    with client:
        with pytest.raises(TypeError, match=r"use_globl_cache.*did you mean 'use_global_cache'"):
            client.verify_file(source, use_globl_cache=False)
        with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
            client.upload(source, name="x", type="email", target_country="US", colour=1)  # type: ignore[call-arg]
        with pytest.raises(
            ValueError, match="max_global_cache_backoff must be an integer from 1 to 180"
        ):
            client.configure("u1", type="email", target_country="US", max_global_cache_backoff=181)
        with pytest.raises(ValueError, match="target_market_industry"):
            client.unit("a@b.com", type="email", target_market_industry=0)
        with pytest.raises(TypeError, match="remove_duplicate"):
            client.unit("a@b.com", type="email", remove_duplicate=True)  # type: ignore[call-arg]
        with pytest.raises(ValueError, match="use_account_cache must be True or False"):
            client.configure("u1", type="email", target_country="US", use_account_cache="no")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="type must be"):
            client.configure("u1", type="fax", target_country="US")
        with pytest.raises(ValueError, match="target_country"):
            client.verify_file(source, target_country="USA")
        with pytest.raises(ValueError, match="keep: 'good'"):
            client.export_to("u1", tmp_path / "x.csv", keep="deliverable,good")
        with pytest.raises(ValueError, match="column numbers start at 1"):
            client.upload(source, name="x", type="email", target_country="US", column=0)
        with pytest.raises(ValueError, match="extension must be"):
            client.verify_file(source, output=tmp_path / "out.txt")
    assert handler.requests == []


# Uploads stream from the file, with the parameters (one parse) -----------------------------
class ChunkTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Reads a request body the way a socket does, chunk by chunk, recording the sizes: a
    body built in memory arrives as one piece, a streamed file in many."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.body = b""
        self.length = 0

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.length = int(request.headers["Content-Length"])
        return httpx.Response(200, json={"batch_uuid": "u1", "created_at": "t"})

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for chunk in request.stream:  # type: ignore[union-attr]
            self.sizes.append(len(chunk))
            self.body += chunk
        return self._answer(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async for chunk in request.stream:  # type: ignore[union-attr]
            self.sizes.append(len(chunk))
            self.body += chunk
        return self._answer(request)


def test_upload_streams_the_file_and_sends_the_parameters(tmp_path: Path) -> None:
    source = tmp_path / "contacts.csv"
    source.write_bytes(b"Email,Name\r\na@b.com,A\r\n" * 40_000)  # ~1 MB
    transport = ChunkTransport()
    with Client("k", "http://api.test", transport=transport) as client:
        upload = client.upload(
            source,
            name="list",
            type="email",
            target_country="us",
            column="Email",
            header=True,
            use_global_cache=False,
            target_audience=3,
        )
    assert upload.batch_uuid == "u1"
    assert max(transport.sizes) <= 64 * 1024 < source.stat().st_size  # streamed from the file
    body = transport.body
    assert len(body) == transport.length
    assert source.read_bytes() in body
    for name, value in [
        ("column", "Email"),
        ("header", "true"),
        ("use_global_cache", "false"),
        ("target_audience", "3"),
        ("target_country", "US"),
    ]:
        assert f'name="{name}"\r\n\r\n{value}\r\n'.encode() in body


async def test_async_upload_streams_too(tmp_path: Path) -> None:
    source = tmp_path / "c.txt"
    source.write_bytes(b"a@b.com\n" * 100_000)
    transport = ChunkTransport()
    async with AsyncClient("k", "http://api.test", transport=transport) as client:
        upload = await client.upload(source, name="x", type="email", target_country="US")
    assert upload.batch_uuid == "u1"
    assert max(transport.sizes) <= 64 * 1024 < source.stat().st_size
    assert source.read_bytes() in transport.body


def test_a_429_upload_is_sent_again_whole(tmp_path: Path) -> None:
    source = tmp_path / "c.txt"
    source.write_text("a@b.com\nc@d.com\n")
    handler = Recorder(
        httpx.Response(429, headers={"Retry-After": "0"}, json={"message": "slow"}),
        httpx.Response(200, json={"batch_uuid": "u1", "created_at": "t"}),
    )
    client, _ = client_for(handler)
    with client:
        client.upload(source, name="x", type="email", target_country="US")
    first, second = handler.requests
    assert b"a@b.com\nc@d.com\n" in first.content
    assert len(first.content) == len(second.content)  # the file was rewound, not half-sent


# Streaming exports -----------------------------------------------------------------------
class Chunks:
    """A streamed response body that counts how much of it was pulled."""

    def __init__(self, chunks: list[bytes], fail_after: int | None = None) -> None:
        self.chunks = chunks
        self.pulled = 0
        self.fail_after = fail_after

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            if self.fail_after is not None and self.pulled >= self.fail_after:
                raise httpx.ReadError("connection lost")
            self.pulled += 1
            yield chunk


class AsyncChunks:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


def test_export_to_writes_what_the_transport_streams(tmp_path: Path) -> None:
    chunks = [bytes([i]) * 100_000 for i in range(20)]
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, content=Chunks(chunks))

    client, _ = client_for(handler)
    target = tmp_path / "out.csv"
    with client:
        written = client.export_to("u1", target, keep=["deliverable", "risky"], merge=True)
        buffer = io.BytesIO()
        client.export_to("u1", buffer, format="xlsx")
    assert written == 2_000_000
    assert target.read_bytes() == b"".join(chunks)
    assert buffer.getvalue() == b"".join(chunks)
    params = requests[0].url.params
    assert (params["format"], params["keep"], params["merge"]) == (
        "csv",
        "deliverable,risky",
        "true",
    )
    assert requests[1].url.params["format"] == "xlsx"
    assert "keep" not in requests[1].url.params


def test_a_broken_export_leaves_no_file(tmp_path: Path) -> None:
    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=Chunks([b"x" * 1000] * 5, fail_after=2))

    client, _ = client_for(handler)
    target = tmp_path / "out.json"
    with client, pytest.raises(httpx.ReadError):
        client.export_to("u1", target)
    assert list(tmp_path.iterdir()) == []


async def test_async_export_to(tmp_path: Path) -> None:
    client, _ = async_client_for(
        lambda _r: httpx.Response(200, content=AsyncChunks([b"ab", b"cd"]))
    )
    async with client:
        assert await client.export_to("u1", tmp_path / "r.xlsx") == 4
    assert (tmp_path / "r.xlsx").read_bytes() == b"abcd"


def _export_document(count: int) -> dict[str, Any]:
    return {
        f"user{i}@example.com": {
            "email": f"user{i}@example.com",
            "valid": i % 2 == 0,
            "wrong": i % 2 == 1,
            "unknown": False,
            "quality": "good",
            "result": "ok",
            "reason": 'quote " and \\ and é',
            "brand_new_field": i,
        }
        for i in range(count)
    }


def test_iter_results_yields_rows_before_the_body_has_arrived() -> None:
    text = json.dumps(_export_document(3000)).encode()
    body = Chunks([text[i : i + 1000] for i in range(0, len(text), 1000)])
    client, _ = client_for(lambda _r: httpx.Response(200, content=body))
    with client:
        rows = client.iter_results("u1", keep="deliverable")
        first = next(rows)
        assert body.pulled < len(body.chunks) / 4  # the rest is still on its way
        rest = list(rows)
    assert isinstance(first, EmailResult)
    assert (first.email, first.valid, first.reason) == (
        "user0@example.com",
        True,
        'quote " and \\ and é',
    )
    assert first.extra == {"brand_new_field": 0}  # a new server field does not break a client
    assert len(rest) == 2999
    assert body.pulled == len(body.chunks)


async def test_async_iter_results_and_phone_rows() -> None:
    doc = {
        "+6591234567": {"phone": "+6591234567", "valid": True, "type": "mobile", "status": "live"},
        "_statistics": {"batch_uuid": "u1"},
    }
    client, _ = async_client_for(lambda _r: httpx.Response(200, content=json.dumps(doc).encode()))
    async with client:
        rows = [row async for row in client.iter_results("u1")]
    assert len(rows) == 1  # _statistics is not a row (and is not asked for)
    phone = rows[0]
    assert isinstance(phone, PhoneResult)
    assert (phone.phone, phone.type, phone.status) == ("+6591234567", "mobile", "live")


def test_object_stream_reads_any_split_of_the_bytes() -> None:
    doc = {"a@b.com": {"x": [1, 2.5, None, True], "s": 'é " \\u00e9 }'}, "c": {"n": 12345}}
    data = json.dumps(doc, ensure_ascii=False).encode()
    for cut in range(1, len(data)):
        stream = ObjectStream()
        pairs = stream.feed(data[:cut]) + stream.feed(data[cut:]) + stream.feed(b"", final=True)
        assert dict(pairs) == doc, cut
    one_byte = ObjectStream()
    pairs = [p for i in range(len(data)) for p in one_byte.feed(data[i : i + 1])]
    assert dict(pairs + one_byte.feed(b"", final=True)) == doc
    assert ObjectStream().feed(b"{}", final=True) == []


@pytest.mark.parametrize("bad", [b"[1, 2]", b'{"a": 1', b'{"a" 1}', b'{"a": 1} x', b'{"a": 1,,}'])
def test_object_stream_refuses_what_is_not_one_object(bad: bytes) -> None:
    with pytest.raises(JSONStreamError):
        ObjectStream().feed(bad, final=True)


# Types ---------------------------------------------------------------------------------
def test_status_progress_and_stats_are_typed() -> None:
    done = {
        "status": "verification_done",
        "found_content": {"valid_email": 34, "wrong_email": 0, "duplicate_email": 0},
        "found_cost": {
            "total_email_cost": 34,
            "net_email_cost": 34,
            "email_cache_account_return": 0,
            "email_cache_global_return": 0,
        },
        "stats": {"total_verification": 34, "total_verification_valid": 30, "new_one": 1},
        "started_at": "t",
    }
    status = sdk.BatchStatus.parse(done)
    assert (status.verified, status.to_verify) == (34, 34)  # not 0 / 0 once done
    assert isinstance(status.stats, Stats)
    assert (status.stats.total, status.stats.valid, status.stats["total_verification"]) == (
        34,
        30,
        34,
    )
    assert status.stats.extra == {"new_one": 1}
    assert status.extra == {"started_at": "t"}
    credits = sdk.Credits.parse({"email_credit": 1, "phone_credit": 2, "bonus": 3})
    assert credits.extra == {"bonus": 3}


def test_a_callers_http_client_is_used_and_left_open() -> None:
    own = httpx.Client(transport=httpx.MockTransport(lambda _r: CREDITS))
    with Client("k", "http://api.test", http_client=own) as client:
        assert client.credits().email_credit == 5.0
    assert not own.is_closed
    own.close()


# verify_file: one plan, both clients -------------------------------------------------------
class FakeServer:
    """The batch lifecycle as the API answers it, recording every call."""

    def __init__(self, total: int = 34) -> None:
        self.calls: list[tuple[str, str]] = []
        self.form: bytes = b""
        self.polls = 0
        self.total = total

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        method, path = request.method, request.url.path
        self.calls.append((method, path))
        if (method, path) == ("POST", "/v1/batch"):
            self.form = request.content
            return httpx.Response(200, json={"batch_uuid": "u1", "created_at": "t"})
        if (method, path) == ("POST", "/v1/batch/u1"):
            self.polls = 0
            return httpx.Response(200, json={"status": "ok"})
        if (method, path) == ("GET", "/v1/batch/u1"):
            self.polls += 1
            return httpx.Response(200, json=self._status())
        if (method, path) == ("GET", "/v1/batch/u1/export"):
            return httpx.Response(200, content=b"a,b\r\n")
        return httpx.Response(404, json={"message": f"unexpected {method} {path}"})

    def _status(self) -> dict[str, Any]:
        launched = ("POST", "/v1/batch/u1") in self.calls
        if not launched and self.polls < 2:
            return {"status": "parsing_content"}
        content = {"valid_email": self.total, "wrong_email": 0, "duplicate_email": 0}
        cost = {
            "total_email_cost": self.total,
            "net_email_cost": self.total,
            "email_cache_account_return": 0,
            "email_cache_global_return": 0,
        }
        base = {"found_content": content, "found_cost": cost}
        if not launched:
            return {"status": "ready_for_verification", **base}
        if self.polls < 3:
            progress = {"verified": self.polls * 10, "total": self.total}
            return {"status": "verification_ongoing", "progress": progress, **base}
        stats = {"total_verification": self.total, "total_verification_valid": self.total}
        return {"status": "verification_done", "stats": stats, **base}


def _check_run(server: FakeServer, progress: list[tuple[str, int, int]], out: Path) -> None:
    methods = [m for m, _ in server.calls]
    assert "PUT" not in methods
    assert "PATCH" not in methods
    assert b'name="use_global_cache"\r\n\r\nfalse' in server.form
    assert b'name="column"\r\n\r\nauto' in server.form  # a .csv goes up as a table
    assert progress[-1] == ("verification_done", 34, 34)
    ongoing = [(v, t) for s, v, t in progress if s == "verification_ongoing"]
    assert ongoing == [(10, 34), (20, 34)]
    assert out.read_bytes() == b"a,b\r\n"
    export = [c for c in server.calls if c[1].endswith("/export")]
    assert len(export) == 1


def test_verify_file_sends_the_parameters_with_the_upload(tmp_path: Path) -> None:
    source = tmp_path / "contacts.csv"
    source.write_text("Email\na@b.com\n")
    server = FakeServer()
    client, slept = client_for(server)
    progress: list[tuple[str, int, int]] = []
    with client:
        result = client.verify_file(
            source,
            use_global_cache=False,
            output=tmp_path / "cleaned.csv",
            keep="deliverable,risky",
            initial_delay=1,
            on_progress=lambda s: progress.append((s.status, s.verified, s.to_verify)),
        )
    assert isinstance(result, sdk.VerifyResult)
    assert result.stats is not None
    assert result.stats.total == 34
    _check_run(server, progress, tmp_path / "cleaned.csv")
    assert slept == [1, 2]  # the polls while verifying, doubling


def test_async_verify_file_runs_the_same_plan(tmp_path: Path) -> None:
    source = tmp_path / "contacts.csv"
    source.write_text("Email\na@b.com\n")
    server = FakeServer()
    client, _ = async_client_for(server)
    progress: list[tuple[str, int, int]] = []

    async def run() -> sdk.VerifyResult:
        async with client:
            return await client.verify_file(
                source,
                use_global_cache=False,
                output=tmp_path / "cleaned.csv",
                initial_delay=1,
                on_progress=lambda s: progress.append((s.status, s.verified, s.to_verify)),
            )

    result = asyncio.run(run())
    assert result.batch_uuid == "u1"
    _check_run(server, progress, tmp_path / "cleaned.csv")


def test_declined_launch_raises_and_launches_nothing(tmp_path: Path) -> None:
    source = tmp_path / "c.txt"
    source.write_text("a@b.com\n")
    server = FakeServer()
    client, _ = client_for(server)
    with client, pytest.raises(sdk.Declined):
        client.verify_file(source, confirm=lambda s: s.cost is not None and s.cost.net < 1)
    assert ("POST", "/v1/batch/u1") not in server.calls
    assert b'name="column"' not in server.form  # a .txt list is the hosted API's upload


def test_request_reaches_any_path_with_the_key_and_extra_headers() -> None:
    handler = Recorder(CREDITS)
    client, _ = client_for(handler)
    with client:
        response = client.request("GET", "/v1/account/credits", headers={"X-Trace": "t1"})
    assert response.json()["email_credit"] == 5
    sent = handler.requests[0]
    assert (sent.headers["X-API-Key"], sent.headers["X-Trace"]) == ("k", "t1")
    assert str(sent.url) == "http://api.test/v1/account/credits"
