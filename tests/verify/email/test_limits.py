"""The codes read as limits and blocks, the AIMD steps, and the shared store (Redis).

The code tables are the decisions documented in docs/politeness.md; the AIMD steps are pure
functions of the state; the Redis store is checked against a real Redis (skipped without
one) with two clients standing for two workers.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from apexverify.verify.email.breaker import Breakers
from apexverify.verify.email.limits import (
    LimitPolicy,
    LocalSharedState,
    MxLimits,
    MxLimitState,
    SharedState,
    burst,
    connected,
    connections_limited,
    rate_limited,
    recipients_limited,
    reserve_connect,
    reserve_rcpts,
    session_clean,
)
from apexverify.verify.email.replies import (
    Reply,
    connections_limit,
    rate_candidate,
    rcpt_block,
    recipients_limit,
    session_block,
)

POLICY = LimitPolicy(window=60.0)


def _reply(text: str) -> Reply:
    code, _, message = text.partition(" ")
    return Reply.parse(int(code), message)


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("452 4.5.3 Error: too many recipients", True),  # Postfix smtpd_recipient_limit
        ("452 Too many recipients", True),  # RFC 5321 4.5.3.1.10, no enhanced code
        ("552 5.5.3 Too many recipients", True),
        ("421 4.7.0 mx Error: too many errors", True),  # the session is over
        ("452 4.2.2 The email account is over quota", False),  # about the mailbox
        ("452 4.1.1 Mailbox unavailable", False),
        ("450 4.7.1 Error: too many recipients from [192.0.2.1]", False),  # a rate candidate
        ("451 4.7.1 Greylisted, please try again later", False),
        ("550 5.1.1 User unknown", False),
    ],
)
def test_recipients_limit_codes(text: str, limit: bool) -> None:
    assert recipients_limit(_reply(text)) is limit


@pytest.mark.parametrize(
    ("text", "candidate"),
    [
        ("450 4.7.1 Error: too many recipients from [192.0.2.1]", True),  # Postfix anvil
        ("450 4.7.1 Error: too much mail from [192.0.2.1]", True),
        ("451 4.7.1 Greylisting in action, please come back later", False),  # milter-greylist
        ("450 4.2.0 Recipient address rejected: Greylisted", False),  # postgrey
        ("450 Try again later", False),
    ],
)
def test_rate_limit_candidates(text: str, candidate: bool) -> None:
    assert rate_candidate(_reply(text)) is candidate


@pytest.mark.parametrize(
    ("text", "session", "rcpt"),
    [
        ("554 5.7.1 Client host blocked using zen.spamhaus.org", True, True),
        ("554 No SMTP service here", True, False),  # a 554 banner, no enhanced code
        ("550 5.7.606 Access denied, banned sending IP", True, True),
        ("553 5.7.1 Sender address rejected: not owned by user", True, True),
        ("550 5.1.1 User unknown", False, False),
        ("421 4.7.0 Try again later, closing connection", False, False),
        ("451 4.7.1 Greylisted", False, False),  # a 4xx is never a block
    ],
)
def test_block_codes(text: str, session: bool, rcpt: bool) -> None:
    reply = _reply(text)
    assert session_block(reply) is session
    assert rcpt_block(reply) is rcpt


def test_connections_limit_is_a_421() -> None:
    assert connections_limit(_reply("421 4.7.0 mx Error: too many connections from 192.0.2.1"))
    assert not connections_limit(_reply("450 4.7.1 busy"))


def test_recipients_limit_is_learnt_exactly_and_grows_back_slowly() -> None:
    state = recipients_limited(MxLimitState(), answered=20, now=0.0)
    assert state is not None
    assert state.rcpt_cap == 20
    assert recipients_limited(MxLimitState(), answered=0, now=0.0) is None  # nothing learnt
    halved = recipients_limited(state, answered=0, now=0.0)
    assert halved is not None
    assert halved.rcpt_cap == 10
    for _ in range(POLICY.cap_increase_after - 1):
        grown = session_clean(state, answered=20, now=0.0, policy=POLICY)
        assert grown is not None
        state = grown
    assert state.rcpt_cap == 20
    grown = session_clean(state, answered=20, now=0.0, policy=POLICY)
    assert grown is not None
    assert grown.rcpt_cap == 21  # one more after cap_increase_after clean connections


def test_rate_limit_halves_what_was_sent_and_pauses() -> None:
    state = rate_limited(MxLimitState(), measured=20, now=1000.0, policy=POLICY)
    assert state.rate == pytest.approx(10 / 60)  # half of 20 a minute
    assert state.rcpt_paused_until == 1060.0
    assert rate_limited(state, measured=30, now=1010.0, policy=POLICY) == state  # same limit
    again = rate_limited(state, measured=10, now=1070.0, policy=POLICY)
    assert again.rate == pytest.approx(5 / 60)  # multiplicative decrease
    assert again.rcpt_backoff == 120.0  # still limited within a window: the pause doubles
    grown = session_clean(again, answered=1, now=1070.0 + 60, policy=POLICY)
    assert grown is not None
    assert grown.rate == pytest.approx(6 / 60)  # additive increase: one more per window
    assert burst(grown, POLICY) == 1  # a quarter window's worth, at least one


def test_pacing_books_recipients_and_refuses_past_the_deadline() -> None:
    state = MxLimitState(rate=1.0, next_rcpt_at=100.0)
    booked, start = reserve_rcpts(state, count=3, now=90.0, deadline=105.0)
    assert start == 100.0
    assert booked is not None
    assert booked.next_rcpt_at == 103.0
    unbooked, later = reserve_rcpts(booked, count=3, now=90.0, deadline=101.0)
    assert unbooked is None  # past the deadline: nothing booked, the caller holds back
    assert later == 103.0
    assert reserve_rcpts(MxLimitState(), 5, now=90.0, deadline=95.0) == (None, 90.0)


def test_connection_limit_keeps_what_is_open_and_spaces_new_ones() -> None:
    state = connections_limited(
        MxLimitState(), open_now=1, current=5, opened=1, now=0.0, policy=POLICY
    )
    assert state.concurrency == 1
    assert state.connect_gap == pytest.approx(66.0)  # Postfix's 1 a minute: one a window
    assert state.next_connect_at == 60.0
    same = connections_limited(state, open_now=0, current=1, opened=1, now=1.0, policy=POLICY)
    assert same == state  # refusals in the cool-down are the same limit: one decrease
    lone = connections_limited(
        MxLimitState(), open_now=0, current=5, opened=8, now=0.0, policy=POLICY
    )
    assert lone.concurrency == 2  # halved when none of ours was open
    assert lone.connect_gap == pytest.approx(66.0 / 4)  # half the 8 a window it took
    booked, start = reserve_connect(state, now=61.0, deadline=200.0)
    assert start == 61.0
    assert booked is not None
    assert booked.next_connect_at == pytest.approx(127.0)
    assert connected(state, now=100.0, configured=5, policy=POLICY) is None  # too soon
    quiet = POLICY.window * POLICY.concurrency_increase_windows
    back = connected(state, now=quiet + 1, configured=5, policy=POLICY)
    assert back is not None
    assert back.concurrency == 2
    assert back.connect_gap == pytest.approx(33.0)


async def _shared_scenario(store_a: SharedState, store_b: SharedState) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    worker_a = MxLimits(store_a, POLICY, prefix=prefix)
    worker_b = MxLimits(store_b, POLICY, prefix=prefix)
    await worker_a.apply("192.0.2.25", lambda s: recipients_limited(s, 7, 0.0))
    assert (await worker_b.get("192.0.2.25")).rcpt_cap == 7  # what one learnt, both know

    # Concurrent bookings from both workers never overlap (read-modify-write is atomic).
    await worker_a.apply("192.0.2.26", lambda s: MxLimitState(rate=100.0, next_rcpt_at=1e9))

    async def book(limits: MxLimits) -> float:
        _, start = await limits.change(
            "192.0.2.26", lambda s: reserve_rcpts(s, count=1, now=0.0, deadline=2e9)
        )
        return start

    starts = await asyncio.gather(*(book(w) for w in [worker_a, worker_b] * 10))
    assert len(set(starts)) == 20

    breakers_a = Breakers(store_a, 60.0)
    breakers_b = Breakers(store_b, 60.0)
    key = f"mx:{prefix}mx.example.com"
    await breakers_a.trip([key], "554 5.7.1 blocked")
    seen = await breakers_b.open_for([key])
    assert seen is not None
    assert seen.reason == "554 5.7.1 blocked"


async def test_scale_out_engines_keep_limits_and_breakers_in_redis() -> None:
    from apexverify.settings import Settings
    from apexverify.verify.email.engine import EmailVerifier
    from apexverify.verify.email.redis_slots import RedisSharedState
    from apexverify.verify.registry import EngineFactory

    # No Redis is contacted: the client connects on first use.
    factory = EngineFactory(Settings(redis_url="redis://127.0.0.1:6379/0"))
    engine = factory.build("email", sandbox=False)
    assert isinstance(engine, EmailVerifier)
    assert isinstance(engine._breakers.store, RedisSharedState)
    assert isinstance(engine._prober.limits.store, RedisSharedState)
    embedded = EngineFactory(Settings()).build("email", sandbox=False)
    assert isinstance(embedded, EmailVerifier)
    assert isinstance(embedded._breakers.store, LocalSharedState)
    await factory.aclose()


async def test_limits_and_breakers_are_shared_in_process() -> None:
    store = LocalSharedState()
    await _shared_scenario(store, store)


@pytest.mark.redis
async def test_limits_and_breakers_are_shared_between_workers_through_redis() -> None:
    import redis.asyncio as redis

    from apexverify.verify.email.redis_slots import RedisSharedState

    url = os.environ.get("APEXVERIFY_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")
    clients = [redis.Redis.from_url(url, socket_connect_timeout=2) for _ in range(2)]
    try:
        await clients[0].ping()
    except Exception as exc:
        pytest.skip(f"Redis not reachable at {url}: {exc}")
    try:
        await _shared_scenario(RedisSharedState(clients[0]), RedisSharedState(clients[1]))
    finally:
        for client in clients:
            await client.aclose()
