"""SOCKS5 proxy pools: the setting, one stable proxy per MX address, a breaker per proxy,
the ``smtp_proxies`` health check (issue #14, part 5). Loopback only: tests/labs/socks5.py."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from apexverify.errors import ConfigurationError
from apexverify.settings import Settings
from apexverify.verify.base import EmailResult, HealthCheck, VerifyContext, VerifyItem
from apexverify.verify.email.engine import EmailVerifier
from apexverify.verify.email.proxies import (
    PROXY_CHECK,
    ProxyEndpoint,
    ProxyPool,
    ProxyUnavailable,
    parse_proxies,
)
from tests.labs.smtp_lab import ADDRESSES, email_lab
from tests.labs.socks5 import dead_proxy_port, socks5_proxy

# -- the setting ------------------------------------------------------------------------


def test_the_setting_takes_a_comma_separated_list_and_a_single_value() -> None:
    many = " 10.0.0.1:1080 , user:secret@proxy.example:1080,socks5://[::1]:1081"
    assert Settings(smtp_socks5_proxy=many).smtp_socks5_proxy == (
        "10.0.0.1:1080,user:secret@proxy.example:1080,socks5://[::1]:1081"
    )
    assert Settings(smtp_socks5_proxy="proxy.example:1080").smtp_socks5_proxy == (
        "proxy.example:1080"
    )
    assert [e.label for e in parse_proxies(many)] == [
        "10.0.0.1:1080",
        "proxy.example:1080",
        "[::1]:1081",
    ]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("a.example:1080,b.example", "entry 2: must be empty or [socks5://][user:pass@]host:port"),
        ("a.example:1080,,b.example:1080", "entry 2: must be empty or"),
        ("u:hunter2@a.example:1080,socks4://u:hunter2@b:1080", "entry 2:"),
        ("a.example:1080,b.example:99999", "entry 2: the port must be a number from 1 to 65535"),
    ],
)
def test_each_entry_is_validated_and_named_without_its_text(value: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"APEXVERIFY_SMTP_SOCKS5_PROXY": value})
    assert caught.value.setting == "APEXVERIFY_SMTP_SOCKS5_PROXY"
    assert says in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_credentials_are_percent_decoded_and_duplicates_dropped() -> None:
    [endpoint] = parse_proxies(
        "socks5://probe:p%2Cw%40d@127.0.0.1:1080,probe:p%2Cw%40d@127.0.0.1:1080"
    )
    assert endpoint == ProxyEndpoint("127.0.0.1", 1080, "probe", "p,w@d")


# -- the choice -------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rendezvous_keeps_each_mx_on_its_proxy_and_moves_only_a_dead_proxys_share() -> None:
    clock = _Clock()
    endpoints = [ProxyEndpoint(f"proxy{i}.example", 1080) for i in range(3)]
    pool = ProxyPool(endpoints, timeout=1.0, open_seconds=30.0, clock=clock)
    addresses = [f"192.0.2.{i}" for i in range(1, 201)]
    before = {address: pool.choice(address) for address in addresses}
    shares = Counter(before.values())
    assert all(shares[endpoint] > 40 for endpoint in endpoints)  # spread over all three
    assert before == {
        address: ProxyPool(endpoints, timeout=1.0).choice(address) for address in addresses
    }

    dead = endpoints[1]
    for _ in range(3):  # FAILURES_TO_OPEN consecutive connect failures
        pool._failed(dead, "connection refused")
    assert pool.state(dead) == "down"
    after = {address: pool.choice(address) for address in addresses}
    for address in addresses:
        if before[address] == dead:
            assert after[address] == pool.ranked(address)[1]  # its next-ranked proxy
        else:
            assert after[address] == before[address]  # untouched

    clock.now += 30.0  # the down period is over: the dead proxy's MX hosts try it again
    assert pool.state(dead) == "rechecking"
    assert {address: pool.choice(address) for address in addresses} == before


# -- through the engine ---------------------------------------------------------------------


def _dead_port_preferred_by(address: str, live_url: str) -> int:
    """A dead proxy port that ``address`` ranks first, so it is tried (and fails) first."""
    for _ in range(200):
        port = dead_proxy_port()
        pool = ProxyPool(parse_proxies(f"127.0.0.1:{port},{live_url}"), timeout=1.0)
        if pool.ranked(address)[0].port == port:
            return port
    raise AssertionError("no dead port ranked first")


def _check(verifier: EmailVerifier) -> HealthCheck:
    [check] = [check for check in verifier.health() if check.name == PROXY_CHECK]
    return check


def _rows(check: HealthCheck) -> dict[str, dict[str, Any]]:
    return {row["proxy"]: row for row in check.details["proxies"]}


async def test_with_one_dead_proxy_every_address_is_verified_through_the_live_one() -> None:
    async with email_lab() as lab, socks5_proxy() as live:
        dead = _dead_port_preferred_by(ADDRESSES["rejects"], live.url)
        # One RCPT per connection: five connections to each MX, enough to open a breaker.
        settings = lab.settings(
            smtp_socks5_proxy=f"127.0.0.1:{dead},{live.url}", smtp_rcpt_per_connection=1
        )
        verifier = EmailVerifier(settings)
        d = lab.domains
        expected = {
            f"alice@{d.rejects}": "valid",
            f"nobody@{d.rejects}": "wrong",
            f"bob@{d.rejects}": "valid",
            f"ghost@{d.rejects}": "wrong",
            f"carol@{d.catchall}": "unknown",  # accepts anyone: catch-all
            f"info@{d.noutf8}": "valid",
            f"nobody@{d.noutf8}": "wrong",
        }
        outcomes = await verifier.verify_many(
            [VerifyItem(a) for a in expected], VerifyContext(max_attempts=1)
        )
        check = _check(verifier)
        await verifier.aclose()
    verdicts = [o.verdict if isinstance(o, EmailResult) else o for o in outcomes]
    assert verdicts == list(expected.values())
    # Every SMTP connection the lab saw came through the live proxy.
    assert len(live.connections) == sum(lab.connections.values())
    assert live.hosts == {ADDRESSES["rejects"], ADDRESSES["catchall"], ADDRESSES["noutf8"]}
    # The dead proxy's breaker is open, and the check says so without failing readiness.
    assert not check.ok
    assert not check.affects_readiness
    assert check.details["up"] == 1
    assert check.details["down"] == 1
    rows = _rows(check)
    assert rows[f"127.0.0.1:{dead}"]["state"] == "down"
    assert rows[f"127.0.0.1:{dead}"]["consecutive_failures"] >= 3
    assert "refused" in rows[f"127.0.0.1:{dead}"]["last_error"].lower()
    assert rows[f"127.0.0.1:{live.port}"]["state"] == "up"
    assert f"127.0.0.1:{dead}" in check.reason


async def test_each_mx_address_always_sees_the_same_proxy() -> None:
    async with email_lab() as lab, socks5_proxy() as first, socks5_proxy() as second:
        spec = f"{first.url},{second.url}"
        d = lab.domains
        # (not the STARTTLS server: the lab counts its upgraded connection twice)
        domains = [d.rejects, d.catchall, d.policy, d.plain550, d.tempfail, d.noutf8, d.m365]
        addresses = [f"{user}@{domain}" for domain in domains for user in ("alice", "zed")]
        for _engine in range(2):  # two engines (two processes) choose alike
            # A generous timeout: on a loaded machine a proxy handshake slower than the lab's
            # 0.5 s would count against that proxy and fail over, which is another test.
            settings = lab.settings(
                smtp_socks5_proxy=spec, smtp_rcpt_per_connection=1, smtp_timeout_seconds=5.0
            )
            verifier = EmailVerifier(settings)
            await verifier.verify_many([VerifyItem(a) for a in addresses], VerifyContext())
            await verifier.aclose()
    pool = ProxyPool(parse_proxies(spec), timeout=1.0)
    carried = {first.port: first.hosts, second.port: second.hosts}
    assert not first.hosts & second.hosts  # no MX address went through both
    for host, _port in first.connections + second.connections:
        assert host in carried[pool.ranked(host)[0].port]
    assert len(first.connections) + len(second.connections) == sum(lab.connections.values())


async def test_with_every_proxy_down_nothing_connects_and_readiness_fails() -> None:
    async with email_lab() as lab:
        spec = f"127.0.0.1:{dead_proxy_port()},127.0.0.1:{dead_proxy_port()}"
        verifier = EmailVerifier(lab.settings(smtp_socks5_proxy=spec, smtp_rcpt_per_connection=1))
        addresses = [f"{u}@{lab.domains.rejects}" for u in ("alice", "bob", "nobody", "ghost")]
        outcomes = await verifier.verify_many([VerifyItem(a) for a in addresses], VerifyContext())
        [check] = [c for c in await verifier.check_health() if c.name == PROXY_CHECK]
        await verifier.aclose()
    assert sum(lab.connections.values()) == 0  # never a direct connection instead
    assert not any(isinstance(o, EmailResult) and o.verdict in ("valid", "wrong") for o in outcomes)
    assert not check.ok
    assert check.affects_readiness
    assert check.details["up"] == 0


# -- one proxy's breaker ----------------------------------------------------------------


async def test_a_dead_proxy_is_rechecked_and_comes_back() -> None:
    async with email_lab() as lab:
        port = dead_proxy_port()
        pool = ProxyPool(
            parse_proxies(f"127.0.0.1:{port}"), timeout=1.0, failures_to_open=1, open_seconds=0.2
        )
        with pytest.raises(ProxyUnavailable, match="refused"):
            await pool.connect(ADDRESSES["rejects"], lab.smtp_port)
        assert pool.check().affects_readiness
        with pytest.raises(ProxyUnavailable, match="no SOCKS5 proxy is up"):
            await pool.connect(ADDRESSES["rejects"], lab.smtp_port)  # not even tried
        await asyncio.sleep(0.25)
        still = await pool.check_fresh()  # re-checked, still dead: down for another period
        assert not still.ok
        assert still.details["proxies"][0]["state"] == "down"
        async with socks5_proxy(port=port) as revived:
            await asyncio.sleep(0.25)
            check = await pool.check_fresh()  # a SOCKS5 greeting, no destination
            assert check.ok
            assert revived.greetings == 1
            assert revived.connections == []
            sock = await pool.connect(ADDRESSES["rejects"], lab.smtp_port)
            sock.close()
            assert revived.connections == [(ADDRESSES["rejects"], lab.smtp_port)]


async def test_a_connection_due_a_recheck_is_the_trial() -> None:
    async with email_lab() as lab:
        port = dead_proxy_port()
        pool = ProxyPool(
            parse_proxies(f"127.0.0.1:{port}"), timeout=1.0, failures_to_open=1, open_seconds=0.2
        )
        with pytest.raises(ProxyUnavailable):
            await pool.connect(ADDRESSES["rejects"], lab.smtp_port)
        async with socks5_proxy(port=port) as revived:
            await asyncio.sleep(0.25)
            sock = await pool.connect(ADDRESSES["rejects"], lab.smtp_port)
            sock.close()
            assert revived.connections == [(ADDRESSES["rejects"], lab.smtp_port)]
            assert pool.check().ok


async def test_credentials_reach_the_proxy_and_wrong_ones_count_against_it() -> None:
    async with email_lab() as lab, socks5_proxy(username="probe", password="p,w@d") as proxy:
        good = ProxyPool(parse_proxies(f"probe:p%2Cw%40d@127.0.0.1:{proxy.port}"), timeout=1.0)
        sock = await good.connect(ADDRESSES["rejects"], lab.smtp_port)
        sock.close()
        assert proxy.connections == [(ADDRESSES["rejects"], lab.smtp_port)]
        bad = ProxyPool(parse_proxies(f"probe:wrong@127.0.0.1:{proxy.port}"), timeout=1.0)
        with pytest.raises(ProxyUnavailable, match="refused the user name and password"):
            await bad.connect(ADDRESSES["rejects"], lab.smtp_port)
        assert proxy.auth_failures == 1
        assert bad.check().details["proxies"][0]["consecutive_failures"] == 1


async def test_a_destination_refusal_is_about_the_mx_not_the_proxy() -> None:
    async with email_lab() as lab, socks5_proxy() as proxy:
        pool = ProxyPool(parse_proxies(proxy.url), timeout=1.0, failures_to_open=1)
        with pytest.raises(ConnectionRefusedError, match="connection refused"):
            await pool.connect(ADDRESSES["down"], lab.smtp_port)  # nothing listens there
        assert proxy.refused == [(ADDRESSES["down"], lab.smtp_port)]
        assert pool.check().ok
        # Through the engine: MX 10 is down, MX 20 answers, all through the proxy.
        verifier = EmailVerifier(lab.settings(smtp_socks5_proxy=proxy.url))
        [outcome] = await verifier.verify_many(
            [VerifyItem(f"alice@{lab.domains.firstdown}")], VerifyContext()
        )
        assert isinstance(outcome, EmailResult)
        assert outcome.verdict == "valid"
        assert _check(verifier).ok
        await verifier.aclose()


async def test_a_hung_proxy_fails_but_a_slow_destination_does_not() -> None:
    async with socks5_proxy(stall="greeting") as hung, socks5_proxy(stall="connect") as waiting:
        pool = ProxyPool(parse_proxies(hung.url), timeout=0.2, failures_to_open=1)
        with pytest.raises(ProxyUnavailable, match="no answer"):
            await pool.connect("192.0.2.1", 25)
        assert pool.check().details["down"] == 1
        # The proxy greeted and is still waiting for the MX: a timeout about the MX.
        pool = ProxyPool(parse_proxies(waiting.url), timeout=0.2, failures_to_open=1)
        with pytest.raises(TimeoutError, match="did not answer proxy"):
            await pool.connect("192.0.2.1", 25)
        assert pool.check().ok
