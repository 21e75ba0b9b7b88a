"""The per-key token bucket: unit tests on an injected clock (memory and Redis), and a live
n8n-like run of 185 unit calls that waits Retry-After on a 429."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from apexverify.api.ratelimit import RateLimiter, bucket_shape
from apexverify.settings import Settings
from tests.support.fast import open_lab

REDIS_URL = os.environ.get("APEXVERIFY_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")


class FakeClock:
    """Seconds that move only when the test says so."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def _redis_reachable() -> str | None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
        return None
    except Exception as exc:
        return f"Redis not reachable at {REDIS_URL}: {exc}"
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def storage(request: pytest.FixtureRequest) -> str:
    """The limiter's storage: "" (memory) or the test Redis (skipped when it is down)."""
    if request.param == "memory":
        return ""
    problem = await _redis_reachable()
    if problem:
        pytest.skip(problem)
    return REDIS_URL


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def limiter(storage: str, clock: FakeClock) -> AsyncIterator[RateLimiter]:
    made = RateLimiter(180, 3.0, storage, clock=clock)
    yield made
    await made.aclose()


def new_key() -> str:
    # A fresh key per test: Redis buckets of earlier runs (or of other tests) never interfere.
    return f"apx_test_{uuid.uuid4().hex}"


async def test_a_full_bucket_admits_capacity_then_refuses_for_one_second(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    key = new_key()
    decisions = [await limiter.hit(key, "127.0.0.1") for _ in range(180)]
    assert all(d.allowed for d in decisions)
    assert [(d.remaining, d.used) for d in decisions[:2]] == [(179, 1), (178, 2)]
    assert decisions[-1].headers() == {
        "X-RateLimit-Limit": "180",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Used": "180",
    }
    refused = await limiter.hit(key, "127.0.0.1")
    assert (refused.allowed, refused.remaining, refused.retry_after) == (False, 0, 1)
    # A refusal spends nothing: waiting what it said is enough.
    clock.advance(refused.retry_after)
    assert (await limiter.hit(key, "127.0.0.1")).allowed


async def test_retry_after_rounds_the_wait_up_to_whole_seconds(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    key = new_key()
    for _ in range(180):
        await limiter.hit(key, "127.0.0.1")
    clock.advance(0.2)  # the next token is ~0.13 s away: still "1", never "0"
    assert (await limiter.hit(key, "127.0.0.1")).retry_after == 1
    clock.advance(0.14)
    assert (await limiter.hit(key, "127.0.0.1")).allowed


async def test_tokens_come_back_at_the_refill_rate_up_to_capacity(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    key = new_key()
    for _ in range(180):
        await limiter.hit(key, "127.0.0.1")
    # 30 tokens (a token is a whole number of microseconds, 333,334: a hair over 10 s)
    clock.advance(10.001)
    admitted = [await limiter.hit(key, "127.0.0.1") for _ in range(31)]
    assert [d.allowed for d in admitted].count(True) == 30
    assert admitted[0].remaining == 29
    clock.advance(3600)  # an hour idle refills to capacity, not beyond
    again = [await limiter.hit(key, "127.0.0.1") for _ in range(181)]
    assert [d.allowed for d in again].count(True) == 180


async def test_keys_and_addresses_have_their_own_buckets(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    key = new_key()
    for _ in range(180):
        await limiter.hit(key, "10.0.0.1")
    assert not (await limiter.hit(key, "10.0.0.2")).allowed  # a key's bucket, from anywhere
    assert (await limiter.hit(new_key(), "10.0.0.1")).allowed
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.9"
    assert (await limiter.hit(None, address)).remaining == 179  # keyless: per address


async def test_a_slow_refill_gives_a_longer_retry_after(storage: str, clock: FakeClock) -> None:
    limiter = RateLimiter(5, 5 / 60, storage, clock=clock)  # "5 per minute"
    key = new_key()
    try:
        for _ in range(5):
            assert (await limiter.hit(key, "127.0.0.1")).allowed
        refused = await limiter.hit(key, "127.0.0.1")
        assert refused.retry_after == 12
        clock.advance(11)
        assert not (await limiter.hit(key, "127.0.0.1")).allowed
        clock.advance(1)
        assert (await limiter.hit(key, "127.0.0.1")).allowed
    finally:
        await limiter.aclose()


async def test_redis_buckets_are_shared_and_atomic_across_processes(clock: FakeClock) -> None:
    problem = await _redis_reachable()
    if problem:
        pytest.skip(problem)
    # Two limiters stand for two API processes; 240 requests race from both.
    first = RateLimiter(180, 3.0, REDIS_URL, clock=clock)
    second = RateLimiter(180, 3.0, REDIS_URL, clock=clock)
    key = new_key()
    try:
        decisions = await asyncio.gather(
            *(((first if i % 2 else second).hit(key, "127.0.0.1")) for i in range(240))
        )
        assert [d.allowed for d in decisions].count(True) == 180
        clock.advance(1)
        assert (await first.hit(key, "127.0.0.1")).allowed
        assert (await second.hit(key, "127.0.0.1")).allowed
    finally:
        await first.aclose()
        await second.aclose()


async def test_idle_memory_buckets_are_forgotten(clock: FakeClock) -> None:
    limiter = RateLimiter(180, 3.0, clock=clock)
    for i in range(3000):
        await limiter.hit(None, f"10.0.{i // 250}.{i % 250}")
        clock.advance(0.1)  # each bucket is full again a few seconds after its one request
    assert len(limiter._memory) <= 1024  # full buckets swept, not 3000 kept


def test_bucket_shape_defaults_from_the_per_minute_setting() -> None:
    assert bucket_shape(Settings()) == (180, 3.0)
    assert bucket_shape(Settings(rate_limit_per_minute=6)) == (6, 0.1)
    explicit = Settings(rate_limit_capacity=20, rate_limit_refill_per_second=0.5)
    assert bucket_shape(explicit) == (20, 0.5)


def _unit(client: httpx.Client) -> httpx.Response:
    return client.post("/v1/unit", json={"type": "email", "unit": "valid@example.com"})


def _unit_waiting(client: httpx.Client, waits: list[int]) -> httpx.Response:
    """One unit call as n8n's "Retry On Fail" makes it, waiting what a 429 asks for."""
    while (response := _unit(client)).status_code == 429:
        assert response.json() == {"message": "Too Many Requests"}
        waits.append(int(response.headers["Retry-After"]))
        time.sleep(waits[-1])
    return response


def test_185_unit_calls_that_wait_retry_after_all_succeed(make_server) -> None:  # type: ignore[no-untyped-def]
    # The hosted defaults (the test servers raise the limit): 180 at once, 3 per second.
    server = make_server(APEXVERIFY_RATE_LIMIT_PER_MINUTE="180")
    key, _ = server.create_account(sandbox=True)
    waits: list[int] = []
    with httpx.Client(base_url=server.base_url, headers={"X-Api-Key": key}) as client:
        responses = [_unit_waiting(client, waits) for _ in range(185)]
        assert [r.status_code for r in responses] == [200] * 185
        assert responses[0].headers["X-RateLimit-Remaining"] == "179"
        # Over the bucket a client waits about a second per 3 requests, not a minute. (How
        # many 429s the 185 met depends on how fast they went; refills came meanwhile.)
        assert all(wait == 1 for wait in waits), waits
        assert sum(waits) <= 3, waits
        # The bucket is dry now: a client that does not wait meets the 429 within a few
        # calls (30 more calls would need 10 s of refill), and one second later succeeds.
        left = int(responses[-1].headers["X-RateLimit-Remaining"])
        calls = (_unit(client) for _ in range(left + 30))
        refused = next(r for r in calls if r.status_code == 429)
        assert refused.headers["Retry-After"] == "1"
        assert refused.headers["X-RateLimit-Remaining"] == "0"
        time.sleep(1)
        assert _unit(client).status_code == 200


async def test_an_unreachable_bucket_store_serves_unlimited_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis down (port 1: nothing listens) must not turn every request into a 500."""
    async with open_lab(tmp_path, redis_url="redis://127.0.0.1:1/0") as lab:
        _account, key = lab.account(sandbox=True)
        for _ in range(3):
            answer = await lab.get(key, "/v1/account/credits")
            assert answer.status_code == 200, answer.text
            assert "x-ratelimit-limit" not in answer.headers
    warnings = [r for r in caplog.records if "rate limits not applied" in r.getMessage()]
    assert len(warnings) <= 1  # at most one a minute
