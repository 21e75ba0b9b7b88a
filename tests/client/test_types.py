"""The SDK's typed endpoint plumbing, offline (httpx.MockTransport): every endpoint returns the
type it declares, 429 honours Retry-After, other errors raise, the backoff schedule."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from apexverify.client import (
    AsyncClient,
    BatchPage,
    BatchStatus,
    Client,
    Credits,
    EmailResult,
    NotFound,
    RateLimited,
)
from apexverify.client._client import _Base

Handler = Callable[[httpx.Request], httpx.Response]

STATUS = {
    "status": "verification_done",
    "found_content": {"valid_email": 3, "wrong_email": 1, "duplicate_email": 0},
    "found_cost": {
        "total_email_cost": 3,
        "net_email_cost": 2.5,
        "email_cache_account_return": 1,
        "email_cache_global_return": 0,
    },
    "progress": {"verified": 3, "total": 3},
}


def _api(request: httpx.Request) -> httpx.Response:
    path, method = request.url.path, request.method
    if path == "/v1/account/credits":
        return httpx.Response(200, json={"email_credit": 10, "phone_credit": "2.5"})
    if path == "/v1/batch/u1/export":
        return httpx.Response(200, content=b"PK\x03\x04xlsx")
    if path == "/v1/batch/u1/details":
        return httpx.Response(200, json={"name": "n"})
    if path == "/v1/batch/u1" and method == "POST":
        return httpx.Response(200, json={"status": "verification_ongoing"})
    if path == "/v1/batch/u1" and method == "GET":
        return httpx.Response(200, json=STATUS)
    if path == "/v1/batch/u1" and method in ("PUT", "PATCH", "DELETE"):
        return httpx.Response(200, json={"status": "ok"})
    if path == "/v1/batch":
        batch = {
            "batch_uuid": "u1",
            "name": "n",
            "status": "verification_done",
            "type": "email",
            "created_at": "2024-01-01T00:00:00Z",
        }
        return httpx.Response(200, json={"batches": [batch], "total": 1, "offset": 0, "limit": 50})
    if path == "/v1/unit":
        body = json.loads(request.content)
        return httpx.Response(200, json={"email": body["unit"], "valid": True})
    return httpx.Response(404, json={"message": "no such batch"})


def _client(handler: Handler) -> Client:
    return Client("k", "http://api.test", max_retries=1, transport=httpx.MockTransport(handler))


def test_each_endpoint_returns_its_declared_type() -> None:
    with _client(_api) as client:
        credits = client.credits()
        assert credits == Credits(10.0, 2.5)
        status = client.status("u1")
        assert isinstance(status, BatchStatus)
        assert status.done
        assert status.cost is not None
        assert status.cost.cache_account_return == 1
        assert status.content is not None
        assert status.content.valid == 3
        assert client.export("u1", "xlsx") == b"PK\x03\x04xlsx"
        assert client.launch("u1") == "verification_ongoing"
        assert client.details("u1") == {"name": "n"}
        page = client.list_batches()
        assert isinstance(page, BatchPage)
        assert [b.batch_uuid for b in page.batches] == ["u1"]
        unit = client.unit("a@b.com", type="email")
        assert isinstance(unit, EmailResult)
        assert (unit.email, unit.valid, unit["valid"]) == ("a@b.com", True, True)
        client.configure("u1", type="email", target_country="US")  # parsed as None
        client.parse("u1")
        client.delete("u1")
        with pytest.raises(NotFound, match="no such batch"):
            client.status("nope")


def test_rate_limit_waits_for_retry_after_then_gives_up() -> None:
    calls: list[str] = []

    def limited(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) < 3:
            return httpx.Response(429, headers={"Retry-After": "0"}, json={"message": "slow"})
        return _api(request)

    with _client(limited) as client:
        assert client.launch("u1") == "verification_ongoing"  # POST: 429 is still retried
    assert calls == ["POST", "POST", "POST"]

    always = _client(lambda _r: httpx.Response(429, headers={"Retry-After": "5"}, json={}))
    always.max_rate_limit_wait = 1
    with always as client, pytest.raises(RateLimited) as caught:
        client.credits()
    assert caught.value.retry_after == 5.0


def test_backoff_doubles_up_to_eight_seconds() -> None:
    assert [_Base._backoff(n) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert _Base._backoff(5000) == 8.0


async def test_async_client_returns_the_same_types() -> None:
    client = AsyncClient("k", "http://api.test", timeout=5.0, transport=httpx.MockTransport(_api))
    async with client:
        assert await client.credits() == Credits(10.0, 2.5)
        assert (await client.status("u1")).verified == 3
        assert await client.export("u1") == b"PK\x03\x04xlsx"
        await client.delete("u1")
