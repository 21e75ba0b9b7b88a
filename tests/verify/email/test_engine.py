"""Engine behaviour on the loopback lab: grouping, limits, failover, caches, retries, safety."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiosmtplib
import pytest

from apexverify.verify.base import EmailResult, Retry, VerifyContext, VerifyItem
from apexverify.verify.email.engine import EmailVerifier, verify_emails
from apexverify.verify.email.slots import LocalMxSlots
from apexverify.verify.email.smtp import (
    ProbeConfig,
    ProbeConnection,
    RcptGate,
    SessionResult,
    Target,
    run_session,
)
from tests.labs.smtp_lab import ADDRESSES, email_lab
from tests.labs.socks5 import socks5_proxy


def _requested(lab_log: list[tuple[str, str]], behaviour: str) -> list[str]:
    return [address for name, address in lab_log if name == behaviour]


async def test_one_connection_carries_all_rcpts_of_a_domain() -> None:
    async with email_lab() as lab:
        d = lab.domains
        users = ["alice", "bob", "carol", "nobody", "ghost", "info", "dave", "erin"]
        addresses = [f"{u}@{d.rejects}" for u in users]
        results = await verify_emails(addresses, lab.settings())
        assert [r.verdict for r in results] == [
            "valid",
            "valid",
            "valid",
            "wrong",
            "wrong",
            "valid",
            "wrong",
            "wrong",
        ]
        assert lab.connections["rejects"] == 1
        seen = _requested(lab.rcpt_log, "rejects")
        assert len(seen) == len(users) + 1  # plus the catch-all probe, sent first
        assert seen[1:] == addresses


async def test_rcpt_per_connection_limit_opens_more_connections() -> None:
    async with email_lab() as lab:
        d = lab.domains
        addresses = [f"user{i}@{d.rejects}" for i in range(8)]
        verifier = EmailVerifier(lab.settings(smtp_rcpt_per_connection=3))
        await verifier.verify_many([VerifyItem(a) for a in addresses], VerifyContext())
        assert lab.connections["rejects"] == 3  # 9 recipients (with the probe) / 3
        assert verifier.stats.connections_opened == 3
        assert verifier.stats.rcpt_commands == 9


async def test_a_domains_recipients_are_split_evenly_over_its_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A domain is done when its busiest connection is: 9 recipients (with the catch-all
    # probe) at up to 4 per transaction need 3 connections, and carry 3 each, not 4 + 4 + 1.
    async with email_lab(latency=0.005) as lab:
        verifier = EmailVerifier(lab.settings(smtp_rcpt_per_connection=4))
        sizes: list[int] = []
        real = verifier._prober.transact

        async def recording(
            connection: ProbeConnection, batch: list[str], result: SessionResult, gate: RcptGate
        ) -> None:
            sizes.append(len(batch))
            await real(connection, batch, result, gate)

        monkeypatch.setattr(verifier._prober, "transact", recording)
        addresses = [f"user{i}@{lab.domains.rejects}" for i in range(8)]
        results = await verifier.verify_many([VerifyItem(a) for a in addresses], VerifyContext())
        assert sorted(sizes) == [3, 3, 3]
        assert verifier.stats.connections_opened == 3  # as many as before: no extra load
        assert all(isinstance(r, EmailResult) for r in results)
        await verifier.aclose()


async def test_too_many_recipients_continues_on_a_fresh_connection() -> None:
    async with email_lab() as lab:
        d = lab.domains
        addresses = [f"{u}@{d.toomany}" for u in ("alice", "bob", "carol", "nobody")]
        results = await verify_emails(addresses, lab.settings())
        assert [r.verdict for r in results] == ["valid", "valid", "valid", "wrong"]
        # the server takes 2 accepted recipients per transaction: its 452 4.5.3 to carol
        # ends that connection (QUIT) and carol goes on a fresh one (docs/politeness.md)
        assert lab.connections["toomany"] == 2
        assert _requested(lab.rcpt_log, "toomany").count(f"carol@{d.toomany}") == 2


async def test_catch_all_probed_once_per_domain_per_instance() -> None:
    async with email_lab() as lab:
        d = lab.domains
        verifier = EmailVerifier(lab.settings())
        context = VerifyContext()
        first = await verifier.verify_many([VerifyItem(f"a@{d.catchall}")], context)
        second = await verifier.verify_many([VerifyItem(f"b@{d.catchall}")], context)
        assert all(isinstance(r, EmailResult) and r.is_catch_all for r in first + second)
        probes = [
            a for a in _requested(lab.rcpt_log, "catchall") if a.split("@")[0] not in ("a", "b")
        ]
        assert len(probes) == 1
        assert isinstance(second[0], EmailResult)
        assert second[0].extra["catch_all"] == "yes"


async def test_microsoft_365_is_measured_not_assumed_catch_all() -> None:
    async with email_lab() as lab:
        d = lab.domains
        valid, unknown_user = await verify_emails(
            [f"alice@{d.m365}", f"zed@{d.m365}"], lab.settings()
        )
        assert valid.verdict == "valid"
        assert not valid.is_catch_all
        assert valid.extra["catch_all"] == "no"
        assert valid.extra["mx_provider"] == "microsoft365"
        assert unknown_user.verdict == "wrong"
        assert unknown_user.extra["smtp_enhanced_code"] == "5.4.1"


async def test_same_5_4_1_from_another_provider_is_not_user_unknown() -> None:
    from apexverify.verify.email.providers import provider_for_mx
    from apexverify.verify.email.replies import Reply, ReplyKind, classify

    reply = Reply.parse(550, "5.4.1 Recipient address rejected: Access denied")
    assert classify(reply) is ReplyKind.UNSPECIFIED
    provider = provider_for_mx("contoso-com.mail.protection.outlook.com")
    assert provider is not None
    assert classify(reply, provider.enhanced_overrides) is ReplyKind.USER_UNKNOWN
    assert provider_for_mx("evil-mail.protection.outlook.com.example.net") is None


async def test_safety_refuses_loopback_mx_by_default() -> None:
    async with email_lab() as lab:
        d = lab.domains
        [result] = await verify_emails(
            [f"alice@{d.rejects}"], lab.settings(smtp_allow_private_networks=False)
        )
        assert result.verdict == "unknown"
        assert result.extra["evidence"] == "mx_refused"
        assert "127.0.0.2 is a loopback address" in result.extra["reason"]
        assert lab.connections.total() == 0


async def test_private_mx_reason_names_the_addresses() -> None:
    async with email_lab() as lab:
        [result] = await verify_emails(
            [f"alice@{lab.domains.private}"], lab.settings(smtp_allow_private_networks=False)
        )
        assert "10.255.255.1" in result.extra["reason"]
        assert "192.168.77.1" in result.extra["reason"]


async def test_first_mx_down_falls_over_in_preference_order() -> None:
    async with email_lab() as lab:
        d = lab.domains
        ok, bad = await verify_emails([f"alice@{d.firstdown}", f"x@{d.firstdown}"], lab.settings())
        assert (ok.verdict, bad.verdict) == ("valid", "wrong")
        assert ok.extra["mx_host"] == f"mx2.{d.firstdown}"
        assert lab.connections["rejects"] == 1


async def test_dead_mx_is_not_waited_for_again_in_the_same_batch() -> None:
    async with email_lab() as lab:
        verifier = EmailVerifier(lab.settings(smtp_timeout_seconds=0.2))
        context = VerifyContext(max_attempts=1)
        for name in ("a", "b", "c"):
            [outcome] = await verifier.verify_many(
                [VerifyItem(f"{name}@{lab.domains.silent}")], context
            )
            assert isinstance(outcome, EmailResult)
            assert outcome.extra["evidence"] == "timeout"
        assert lab.connections["silent"] == 1


@pytest.mark.parametrize("domain", ["greylist", "silent", "drops", "servfail", "tempfail"])
async def test_last_attempt_is_always_final(domain: str) -> None:
    async with email_lab() as lab:
        address = f"nobody@{getattr(lab.domains, domain)}"
        verifier = EmailVerifier(lab.settings(smtp_timeout_seconds=0.2))
        [early] = await verifier.verify_many(
            [VerifyItem(address, 1)], VerifyContext(max_attempts=3)
        )
        assert isinstance(early, Retry)
        assert early.reason
        [last] = await verifier.verify_many([VerifyItem(address, 3)], VerifyContext(max_attempts=3))
        assert isinstance(last, EmailResult)


async def test_verify_emails_reprobes_greylisted_addresses_later() -> None:
    async with email_lab() as lab:
        d = lab.domains
        results = await verify_emails(
            [f"alice@{d.greylist}", f"nobody@{d.greylist}", f"bob@{d.rejects}"],
            lab.settings(smtp_greylist_retry_seconds=0.05),
        )
        assert [r.verdict for r in results] == ["valid", "wrong", "valid"]
        assert lab.connections["greylist"] == 1  # the idle connection was reused
        assert len(_requested(lab.rcpt_log, "greylist")) == 6  # 2 + probe, twice
        assert lab.connections["rejects"] == 1  # final on the first pass, not probed again


async def test_order_duplicates_and_syntax_errors() -> None:
    async with email_lab() as lab:
        d = lab.domains
        values = [
            f"bob@{d.rejects}",
            "not an address",
            f"bob@{d.rejects}",
            f"x@{d.nullmx}",
            f"Bob@{d.rejects.upper()}",
            "a@b.test",
        ]
        results = await verify_emails(values, lab.settings())
        assert [r.verdict for r in results] == [
            "valid",
            "wrong",
            "valid",
            "wrong",
            "valid",
            "wrong",
        ]
        assert [r.is_syntax_error for r in results] == [False, True, False, False, False, True]
        assert results[1].extra["evidence"] == "syntax_error"


async def test_did_you_mean_and_extra_fields_are_always_present() -> None:
    async with email_lab() as lab:
        [typo, plain] = await verify_emails(
            ["alice@gmial.com", f"alice@{lab.domains.rejects}"], lab.settings()
        )
        assert typo.extra["did_you_mean"] == "alice@gmail.com"
        assert plain.extra["did_you_mean"] is None
        assert list(typo.extra) == list(plain.extra)
        assert plain.extra["smtp_code"] == 250
        assert plain.extra["smtp_reply"] == "250 2.1.5 OK"
        assert plain.extra["mx_host"] == f"mx.{lab.domains.rejects}"


class RecordingSlots:
    """An MxSlots implementation that records concurrency per key (pluggability check)."""

    def __init__(self, per_mx: int) -> None:
        self.inner = LocalMxSlots(per_mx)
        self.active: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()

    @asynccontextmanager
    async def acquire(self, mx_key: str, limit: int | None = None) -> AsyncIterator[None]:
        async with self.inner.acquire(mx_key, limit):
            self.active[mx_key] += 1
            self.peak[mx_key] = max(self.peak[mx_key], self.active[mx_key])
            try:
                yield
            finally:
                self.active[mx_key] -= 1


async def test_per_mx_limit_through_pluggable_slots() -> None:
    async with email_lab(latency=0.01) as lab:
        slots = RecordingSlots(per_mx=2)
        verifier = EmailVerifier(lab.settings(smtp_rcpt_per_connection=2), mx_slots=slots)
        addresses = [f"user{i}@{lab.domains.rejects}" for i in range(15)]
        await verifier.verify_many([VerifyItem(a) for a in addresses], VerifyContext())
        assert verifier.stats.rcpt_commands == 16
        assert lab.connections["rejects"] == 2  # 8 transactions on 2 reused connections
        assert slots.peak == Counter({ADDRESSES["rejects"]: 2})


async def test_global_connection_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    async with email_lab(latency=0.01) as lab:
        verifier = EmailVerifier(lab.settings(smtp_max_connections=2, smtp_rcpt_per_connection=1))
        active = 0
        peak = 0
        real = verifier._prober.transact

        async def counting(
            connection: ProbeConnection, batch: list[str], result: SessionResult, gate: RcptGate
        ) -> None:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            try:
                await real(connection, batch, result, gate)
            finally:
                active -= 1

        monkeypatch.setattr(verifier._prober, "transact", counting)
        d = lab.domains
        addresses = [f"u{i}@{dom}" for i in range(3) for dom in (d.rejects, d.catchall, d.greylist)]
        await verifier.verify_many([VerifyItem(a) for a in addresses], VerifyContext())
        assert peak == 2
        assert verifier.stats.rcpt_commands == 12  # 9 addresses + 3 catch-all probes


async def test_idle_connections_are_reused_across_chunks_then_closed() -> None:
    async with email_lab() as lab:
        verifier = EmailVerifier(lab.settings())
        for user in ("alice", "bob", "nobody"):
            await verifier.verify_many(
                [VerifyItem(f"{user}@{lab.domains.rejects}")], VerifyContext()
            )
        assert lab.connections["rejects"] == 1
        assert verifier.stats.connections_opened == 1
        verifier._pool.idle_seconds = 0.0  # expired connections are not reused
        await verifier.verify_many([VerifyItem(f"carol@{lab.domains.rejects}")], VerifyContext())
        assert lab.connections["rejects"] == 2
        await verifier.aclose()
        assert verifier._pool._count == 0


async def _send_data_to_the_lab() -> int:
    async with email_lab() as lab:
        client = aiosmtplib.SMTP(hostname="127.0.0.2", port=lab.smtp_port, timeout=2)
        await client.connect()
        await client.ehlo()
        await client.mail("probe@lab-example.com")
        await client.rcpt(f"alice@{lab.domains.rejects}")
        response = await client.execute_command(b"DATA")
        await client.quit()
    return response.code


async def test_lab_fails_when_a_server_receives_data() -> None:
    with pytest.raises(AssertionError, match="DATA"):
        await _send_data_to_the_lab()


async def test_concurrent_verify_many_share_dns_cache() -> None:
    async with email_lab() as lab:
        verifier = EmailVerifier(lab.settings())
        context = VerifyContext()
        chunks = [
            [VerifyItem(f"u{i}{j}@{lab.domains.rejects}") for j in range(3)] for i in range(4)
        ]
        await asyncio.gather(*(verifier.verify_many(chunk, context) for chunk in chunks))
        mx_queries = [q for q in lab.dns.resolver.queries if q == (f"{lab.domains.rejects}.", "MX")]
        assert len(mx_queries) == 1


async def test_starttls_is_used_when_offered() -> None:
    async with email_lab() as lab:
        ok, bad = await verify_emails(
            [f"alice@{lab.domains.tls}", f"nobody@{lab.domains.tls}"], lab.settings()
        )
        assert (ok.verdict, bad.verdict) == ("valid", "wrong")
        assert lab.recorder.tls_rcpts == ["tls"] * 3  # probe + 2 addresses, all encrypted


async def test_broken_starttls_falls_back_to_plain_text() -> None:
    async with email_lab() as lab:
        verifier = EmailVerifier(lab.settings())
        addresses = [f"alice@{lab.domains.badtls}", f"nobody@{lab.domains.badtls}"]
        ok, bad = await verifier.verify_many([VerifyItem(a) for a in addresses], VerifyContext())
        await verifier.aclose()
        assert isinstance(ok, EmailResult)
        assert isinstance(bad, EmailResult)
        assert (ok.verdict, bad.verdict) == ("valid", "wrong")
        assert lab.connections["badtls"] == 2  # the broken TLS attempt, then plain text
        assert verifier.stats.connections_opened == 2


async def test_socks5_proxy_carries_the_smtp_connection() -> None:
    async with email_lab() as lab, socks5_proxy() as proxy:
        ok, bad = await verify_emails(
            [f"alice@{lab.domains.rejects}", f"nobody@{lab.domains.rejects}"],
            lab.settings(smtp_socks5_proxy=proxy.url),
        )
        assert (ok.verdict, bad.verdict) == ("valid", "wrong")
        assert proxy.connections == [(ADDRESSES["rejects"], lab.smtp_port)]
        # the documented "host:port" form works as well
        [again] = await verify_emails(
            [f"bob@{lab.domains.rejects}"],
            lab.settings(smtp_socks5_proxy=f"{proxy.host}:{proxy.port}"),
        )
        assert again.verdict == "valid"
        assert len(proxy.connections) == 2


async def test_run_session_single_connection_api() -> None:
    async with email_lab() as lab:
        config = ProbeConfig(
            port=lab.smtp_port,
            timeout=1.0,
            helo_name="probe.lab-example.com",
            mail_from="probe@lab-example.com",
        )
        target = Target(f"mx.{lab.domains.rejects}", ADDRESSES["rejects"])
        result = await run_session(
            target, [f"alice@{lab.domains.rejects}", f"zed@{lab.domains.rejects}"], config
        )
        assert result.greeted
        assert result.failure is None
        assert [reply.code for reply in result.answers.values()] == [250, 550]
        refused = await run_session(Target("down", ADDRESSES["down"]), ["a@b.com"], config)
        assert refused.failure == "refused"
        assert not refused.greeted


async def test_every_smtp_reply_is_reported_to_the_observer() -> None:
    async with email_lab() as lab:
        d = lab.domains
        seen: list[tuple[str, int]] = []
        verifier = EmailVerifier(
            lab.settings(), on_reply=lambda stage, code: seen.append((stage, code))
        )
        addresses = [f"alice@{d.rejects}", f"nobody@{d.rejects}"]
        await verifier.verify_many([VerifyItem(a) for a in addresses], VerifyContext())
        await verifier.aclose()
        # The catch-all probe (a random local part, refused) comes first, then the two
        # recipients; the idle connection is closed politely at aclose().
        assert seen == [
            ("greeting", 220),
            ("ehlo", 250),
            ("mail", 250),
            ("rcpt", 550),
            ("rcpt", 250),
            ("rcpt", 550),
            ("rset", 250),
            ("quit", 221),
        ]
        assert len([s for s in seen if s[0] == "rcpt"]) == len(lab.rcpt_log)


async def test_greylisting_and_refused_sessions_are_reported_too() -> None:
    async with email_lab() as lab:
        d = lab.domains
        seen: list[tuple[str, int]] = []
        verifier = EmailVerifier(
            lab.settings(), on_reply=lambda stage, code: seen.append((stage, code))
        )
        await verifier.verify_many([VerifyItem(f"alice@{d.greylist}")], VerifyContext())
        await verifier.aclose()
        assert ("rcpt", 451) in seen


async def _observed(lab: Any, address: str) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    verifier = EmailVerifier(
        lab.settings(), on_reply=lambda stage, code: seen.append((stage, code))
    )
    await verifier.verify_many([VerifyItem(address)], VerifyContext())
    await verifier.aclose()
    return seen


async def test_starttls_replies_are_reported_even_when_the_handshake_breaks() -> None:
    async with email_lab() as lab:
        d = lab.domains
        after_ehlo = [("mail", 250), ("rcpt", 550), ("rcpt", 250), ("rset", 250), ("quit", 221)]
        # EHLO is sent again once encrypted: extensions may change.
        assert await _observed(lab, f"alice@{d.tls}") == [
            ("greeting", 220),
            ("ehlo", 250),
            ("starttls", 220),
            ("ehlo", 250),
            *after_ehlo,
        ]
        # 220 to STARTTLS, then garbage instead of a TLS handshake: that 220 was received and
        # is counted; the engine starts over in plain text on a second connection.
        assert await _observed(lab, f"alice@{d.badtls}") == [
            ("greeting", 220),
            ("ehlo", 250),
            ("starttls", 220),
            ("greeting", 220),
            ("ehlo", 250),
            *after_ehlo,
        ]
        assert await _observed(lab, f"alice@{d.banner}") == [("greeting", 554)]


@asynccontextmanager
async def _scripted_smtp(answers: dict[str, bytes]) -> AsyncIterator[int]:
    """A pre-ESMTP server answering each verb from ``answers``: the port it listens on."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 old.lab ready\r\n")
        while line := await reader.readline():
            verb = line[:4].decode().upper()
            writer.write(answers.get(verb, b"502 5.5.2 not implemented") + b"\r\n")
            await writer.drain()
            if verb == "QUIT":
                break
        writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_helo_fallback_and_odd_quit_replies_are_reported() -> None:
    answers = {
        "EHLO": b"500 5.5.1 EHLO? never heard of it",
        "HELO": b"250 old.lab",
        "MAIL": b"250 ok",
        "RCPT": b"550 5.1.1 no such user",
        "RSET": b"250 ok",
        "QUIT": b"250 bye",  # not the 221 RFC 5321 asks for
    }
    seen: list[tuple[str, int]] = []
    async with _scripted_smtp(answers) as port:
        config = ProbeConfig(
            port=port,
            timeout=2.0,
            helo_name="probe.lab-example.com",
            mail_from="probe@lab-example.com",
            on_reply=lambda stage, code: seen.append((stage, code)),
        )
        result = await run_session(Target("old.lab", "127.0.0.1"), ["zed@old.lab"], config)
        assert result.failure is None
        assert seen == [
            ("greeting", 220),
            ("ehlo", 500),
            ("helo", 250),
            ("mail", 250),
            ("rcpt", 550),
            ("rset", 250),
            ("quit", 250),
        ]
        seen.clear()
        async with _scripted_smtp({**answers, "HELO": b"554 5.7.1 go away"}) as refusing:
            config = dataclasses.replace(config, port=refusing)
            refused = await run_session(Target("old.lab", "127.0.0.1"), ["zed@old.lab"], config)
        assert not refused.answers
        assert seen[:3] == [("greeting", 220), ("ehlo", 500), ("helo", 554)]
