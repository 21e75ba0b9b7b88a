"""A polite prober against scripted servers with Postfix's anti-abuse limits (issue #14).

Each test plays one limit on loopback (``tests/labs/strict_smtp.py``) and checks three things:
every address ends with its true verdict (``verify_emails`` honours retries the way the batch
runner does), the server saw no more refusals than its limit, and no connection was opened
that the server had said it would refuse. Windows are 1 s instead of Postfix's 60 s.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from apexverify.metrics import EnvironmentCollector
from apexverify.verify.base import EmailResult, Retry, VerifyContext, VerifyItem
from apexverify.verify.email.engine import EmailVerifier, verify_emails
from tests.labs.strict_smtp import StrictLab, StrictPolicy, StrictServer, known_user, strict_lab


def _addresses(lab: StrictLab, name: str, count: int) -> list[str]:
    return [f"user{i}@{lab.domain(name)}" for i in range(count)]


def _truth(address: str, known: object = known_user) -> str:
    assert callable(known)
    return "valid" if known(address.partition("@")[0]) else "wrong"


def _assert_no_error_limit_reached(server: StrictServer, budget: int = 8) -> None:
    for session in server.sessions:
        assert session.errors <= budget, session
        assert session.delayed == 0, session  # never slowed down by the soft error limit
        assert not session.cut, session  # never cut off by the hard error limit


async def test_per_connection_recipient_limit_is_learnt_once() -> None:
    async with strict_lab({"capped": StrictPolicy(rcpt_per_connection=5)}) as lab:
        addresses = _addresses(lab, "capped", 30)
        results = await verify_emails(addresses, lab.settings())
        server = lab.servers["capped"]
    assert [r.verdict for r in results] == [_truth(a) for a in addresses]
    assert server.codes(452) == 1  # the limit is hit once, then respected
    assert all(len(s.rcpts) <= 5 for s in server.sessions[1:])
    assert all(s.quit for s in server.accepted_sessions)  # each connection ended with QUIT
    _assert_no_error_limit_reached(server)


async def test_recipient_rate_limit_is_paced_without_being_cut_off() -> None:
    async with strict_lab({"rated": StrictPolicy(rcpt_rate=(10, 1.0))}) as lab:
        addresses = _addresses(lab, "rated", 40)
        results = await verify_emails(addresses, lab.settings(), max_attempts=3)
        server = lab.servers["rated"]
    assert [r.verdict for r in results] == [_truth(a) for a in addresses]
    # Postfix's 450 4.7.1 counts as an error: the engine stops at the first one on a
    # connection and slows down, instead of sending on until "421 too many errors".
    refused = [s for s in server.sessions if any(code == 450 for _, _, code in s.rcpts)]
    assert all(sum(code == 450 for _, _, code in s.rcpts) == 1 for s in refused)
    assert server.codes(450) <= 4
    _assert_no_error_limit_reached(server)


async def test_one_connection_limit_queues_work_on_the_open_connection() -> None:
    async with strict_lab({"single": StrictPolicy(max_concurrent=1)}) as lab:
        settings = lab.settings()
        verifier = EmailVerifier(settings)
        first = _addresses(lab, "single", 61)  # 50 + 11 per transaction, plus the probe
        second = [f"user{i}@{lab.domain('single')}" for i in range(61, 122)]  # the next chunk
        results = await verify_emails(first, settings, verifier=verifier)
        results += await verify_emails(second, settings, verifier=verifier)
        await verifier.aclose()
        server = lab.servers["single"]
    assert [r.verdict for r in results] == [_truth(a) for a in first + second]
    refused = server.refused_connections()
    assert len(refused) == 1  # the second lane's, at the start; never again
    assert server.overlapping_after(refused[0].opened) == 0
    _assert_no_error_limit_reached(server)


async def test_connection_rate_limit_spaces_new_connections() -> None:
    policy = StrictPolicy(connection_rate=(1, 1.0))
    async with strict_lab({"slowconn": policy}) as lab:
        settings = lab.settings()
        verifier = EmailVerifier(settings)
        first = _addresses(lab, "slowconn", 61)
        second = [f"user{i}@{lab.domain('slowconn')}" for i in range(61, 122)]
        results = await verify_emails(first, settings, verifier=verifier)
        results += await verify_emails(second, settings, verifier=verifier)
        await verifier.aclose()
        server = lab.servers["slowconn"]
    assert [r.verdict for r in results] == [_truth(a) for a in first + second]
    assert len(server.refused_connections()) == 1
    _assert_no_error_limit_reached(server)


def _mostly_dead(local: str) -> bool:
    return local.startswith("user") and int(local[4:]) % 10 < 3  # 70% unknown users


async def test_dirty_list_stays_below_the_stock_error_limits_in_one_pass() -> None:
    async with strict_lab({"dirty": StrictPolicy(known=_mostly_dead)}) as lab:
        addresses = _addresses(lab, "dirty", 60)
        verifier = EmailVerifier(lab.settings())
        outcomes = await verifier.verify_many([VerifyItem(a) for a in addresses], VerifyContext())
        await verifier.aclose()
        server = lab.servers["dirty"]
    assert all(isinstance(o, EmailResult) for o in outcomes)  # no second pass needed
    verdicts = [o.verdict for o in outcomes if isinstance(o, EmailResult)]
    assert verdicts == [_truth(a, _mostly_dead) for a in addresses]
    _assert_no_error_limit_reached(server)
    assert len(server.accepted_sessions) >= 43 // 8  # 43 refusals (with the probe), 8 each


async def test_greylisted_address_is_reprobed_at_its_delay_whatever_the_pass_does() -> None:
    policies = {
        "grey": StrictPolicy(greylist_seconds=1.0),
        "slow": StrictPolicy(latency=0.3),  # about 3.5 s for its 8 addresses
    }
    async with strict_lab(policies) as lab:
        grey = [f"alice@{lab.domain('grey')}", f"user7@{lab.domain('grey')}"]
        slow = _addresses(lab, "slow", 8)
        settings = lab.settings(smtp_greylist_retry_seconds=2.0)
        results = await verify_emails(grey + slow, settings)
        server = lab.servers["grey"]
    assert [r.verdict for r in results] == [_truth(a) for a in grey + slow]
    for address in grey:
        seen = [(at, code) for at, rcpt, code in server.rcpts() if rcpt == address]
        (first, code), (again, final) = seen
        assert (code, final) == (451, 250)
        assert 2.0 <= again - first <= 2.0 + 2.0  # within 2 s of the configured delay


async def test_retry_not_before_is_the_time_of_the_4xx_plus_the_delay() -> None:
    policies = {"grey": StrictPolicy(greylist_seconds=60.0), "slow": StrictPolicy(latency=0.3)}
    async with strict_lab(policies) as lab:
        address = f"alice@{lab.domain('grey')}"
        items = [VerifyItem(address), *(VerifyItem(a) for a in _addresses(lab, "slow", 4))]
        verifier = EmailVerifier(lab.settings(smtp_greylist_retry_seconds=2.0))
        loop = asyncio.get_running_loop()
        started = loop.time()
        outcomes = await verifier.verify_many(items, VerifyContext())
        took = loop.time() - started
        await verifier.aclose()
        [(replied, _, code)] = [r for r in lab.servers["grey"].rcpts() if r[1] == address]
    retry = outcomes[0]
    assert isinstance(retry, Retry)
    assert code == 451
    assert retry.consumes_attempt
    assert retry.not_before is not None
    assert took > 2.0  # the slow MX held the call past the greylisted address's retry time
    assert 2.0 <= retry.not_before - replied <= 2.0 + 0.1 + 0.05  # delay + jitter (5%)
    assert retry.after_seconds == 2.0  # kept for compatibility


async def test_block_opens_the_breaker_and_nothing_more_is_sent_there(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="apexverify.verify.email.breaker")
    banner = "554 5.7.1 mx.strict: Client host [127.0.0.1] blocked using zen.spamhaus.org"
    async with strict_lab({"blocked": StrictPolicy(banner=banner)}) as lab:
        domain = lab.domain("blocked")
        verifier = EmailVerifier(lab.settings(smtp_breaker_seconds=1.5))
        context = VerifyContext(max_attempts=1)
        [first] = await verifier.verify_many([VerifyItem(f"alice@{domain}")], context)
        [second] = await verifier.verify_many([VerifyItem(f"bob@{domain}")], context)
        server = lab.servers["blocked"]
        connections_while_open = len(server.sessions)
        check = next(c for c in verifier.health() if c.name == "smtp_blocks")
        gauge = _open_breakers_gauge(verifier)
        await asyncio.sleep(1.6)
        [third] = await verifier.verify_many([VerifyItem(f"carol@{domain}")], context)
        await verifier.aclose()
    assert isinstance(first, EmailResult)
    assert first.extra["evidence"] == "policy"
    assert isinstance(second, EmailResult)
    assert (second.verdict, second.result, second.extra["evidence"]) == (
        "unknown",
        "error",
        "blocked",
    )
    assert "blocked" in str(second.extra["reason"]) or "blocks us" in str(second.extra["reason"])
    assert connections_while_open == 1  # bob's address was not probed
    assert not check.ok
    assert not check.affects_readiness
    assert check.details["open_breakers"] == 1
    assert gauge == 1.0  # /metrics: apexverify_smtp_open_breakers
    assert len(server.sessions) == 2  # after the breaker time, probed again
    assert isinstance(third, EmailResult)
    assert third.extra["evidence"] == "policy"
    opened = [r for r in caplog.records if "breaker open" in r.getMessage()]
    closed = [r for r in caplog.records if "breaker closed" in r.getMessage()]
    assert [r.levelno for r in opened] == [logging.WARNING, logging.WARNING]  # once per block
    assert closed
    assert all(r.levelno == logging.INFO for r in closed)


def _open_breakers_gauge(verifier: EmailVerifier) -> float:
    """What /metrics exports from the engine's checks (the collector the composition root
    feeds with the engine factory's health)."""
    collector = EnvironmentCollector()
    collector.source = verifier.health
    [family] = [f for f in collector.collect() if f.name == "apexverify_smtp_open_breakers"]
    [sample] = family.samples
    return float(sample.value)


async def test_a_block_by_one_provider_mx_stops_the_provider() -> None:
    banned = "550 5.7.606 Access denied, banned sending IP [127.0.0.1]"
    policies = {
        "tenanta": StrictPolicy(mail_reply=banned, mx_host="tenanta.mail.protection.outlook.com"),
        "tenantb": StrictPolicy(mx_host="tenantb.mail.protection.outlook.com"),
    }
    async with strict_lab(policies) as lab:
        verifier = EmailVerifier(lab.settings())
        context = VerifyContext(max_attempts=1)
        [a] = await verifier.verify_many([VerifyItem(f"alice@{lab.domain('tenanta')}")], context)
        [b] = await verifier.verify_many([VerifyItem(f"alice@{lab.domain('tenantb')}")], context)
        check = next(c for c in verifier.health() if c.name == "smtp_blocks")
        await verifier.aclose()
        untouched = lab.servers["tenantb"].sessions
    assert isinstance(a, EmailResult)
    assert a.extra["evidence"] == "policy"
    assert isinstance(b, EmailResult)
    assert b.extra["evidence"] == "blocked"
    assert b.extra["mx_provider"] == "microsoft365"
    assert untouched == []
    assert {entry["key"] for entry in check.details["breakers"]} == {
        "mx:tenanta.mail.protection.outlook.com",
        "provider:microsoft365",
    }


async def test_two_policy_refusals_at_rcpt_stop_the_domain() -> None:
    refusal = "550 5.7.1 <x>: Client host rejected: Access denied"
    async with strict_lab({"denied": StrictPolicy(rcpt_reply=refusal)}) as lab:
        addresses = _addresses(lab, "denied", 6)
        verifier = EmailVerifier(lab.settings())
        outcomes = await verifier.verify_many(
            [VerifyItem(a) for a in addresses], VerifyContext(max_attempts=1)
        )
        await verifier.aclose()
        server = lab.servers["denied"]
    evidence = [o.extra["evidence"] for o in outcomes if isinstance(o, EmailResult)]
    assert evidence == ["policy"] + ["blocked"] * 5  # the catch-all probe was the first 5.7.1
    assert len(server.rcpts()) == 2


async def test_policy_refusals_after_an_accepted_recipient_are_no_block() -> None:
    # Microsoft 365 refuses outside senders to restricted groups with 5.7.x, per recipient.
    group = "550 5.7.133 RESOLVER.RST.SenderNotAuthenticatedForGroup; authentication required"
    policy = StrictPolicy(special={"group1": group, "group2": group})
    async with strict_lab({"mixed": policy}) as lab:
        d = lab.domain("mixed")
        addresses = [f"alice@{d}", f"group1@{d}", f"group2@{d}", f"bob@{d}"]
        verifier = EmailVerifier(lab.settings())
        outcomes = await verifier.verify_many([VerifyItem(a) for a in addresses], VerifyContext())
        check = next(c for c in verifier.health() if c.name == "smtp_blocks")
        await verifier.aclose()
    evidence = [o.extra["evidence"] for o in outcomes if isinstance(o, EmailResult)]
    assert evidence == ["accepted", "policy", "policy", "accepted"]
    assert check.ok
