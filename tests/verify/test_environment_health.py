"""Environment health of the email engine: evidence from a lying resolver or a blocked port 25
is deferred, never decided, and the checks say why (docs/results.md, "Unhealthy environment").

Everything runs on loopback: the DNS lab (switched to "lying" at run time) and SMTP lab
servers; clocks are fakes where time matters, so nothing here waits for a real interval.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from apexverify.settings import Settings
from apexverify.verify.base import (
    EmailResult,
    HealthCheck,
    Outcome,
    Retry,
    VerifyContext,
    VerifyItem,
)
from apexverify.verify.email.engine import EmailVerifier
from apexverify.verify.email.health import (
    DNS_CHECK,
    ERROR_SHARE_MIN_ANSWERS,
    SMTP_CHECK,
    SMTP_RECENT_SECONDS,
    DnsHealth,
    SmtpHealth,
)
from apexverify.verify.email.mx import MailDomain
from apexverify.verify.email.verdicts import DEFERRED_WHILE, Deferral, Evidence
from apexverify.verify.registry import EngineFactory
from apexverify.verify.sandbox import SandboxVerifier
from tests.labs.dns_server import LabDnsServer
from tests.labs.smtp_lab import LabRecorder, email_lab, free_port, serve_behaviour

RESULTS_MD = Path(__file__).resolve().parents[2] / "docs" / "results.md"
FINAL = VerifyContext(max_attempts=1)  # every item is at its last attempt
CANARIES = "canaries gmail.com, outlook.com, yahoo.com answered NXDOMAIN"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _verify(verifier: EmailVerifier, addresses: Sequence[str]) -> list[Outcome]:
    return await verifier.verify_many([VerifyItem(a) for a in addresses], FINAL)


def _check(checks: list[HealthCheck], name: str) -> HealthCheck:
    [check] = [c for c in checks if c.name == name]
    return check


# -- DNS: the lab resolver lies, then answers again ----------------------------------------


async def test_lying_resolver_defers_every_dns_answer_then_verdicts_come_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="apexverify.verify.email.health")
    async with email_lab() as lab:
        d = lab.domains
        expected = {
            f"alice@{d.rejects}": ("valid", "accepted"),
            f"nobody@{d.rejects}": ("wrong", "user_unknown"),
            f"alice@{d.nxdomain}": ("wrong", "nxdomain"),
            f"alice@{d.nomail}": ("wrong", "no_mail_host"),
            f"alice@{d.free}": ("valid", "accepted"),  # gmail.com: a canary name, too
        }
        # Interval 0: the canaries are asked again before every NXDOMAIN is trusted.
        verifier = EmailVerifier(lab.settings(dns_canary_interval_seconds=0))
        lab.dns.lying = True
        for _ in range(2):  # twice: the state is logged once, not per answer
            outcomes = await _verify(verifier, list(expected))
            for outcome in outcomes:
                assert isinstance(outcome, Retry), outcome
                assert outcome.reason == (
                    f"dns_unhealthy: DNS looks unhealthy: {CANARIES}; "
                    "not treating NXDOMAIN as evidence"
                )
        dns = _check(await verifier.check_health(), DNS_CHECK)
        assert not dns.ok
        assert dns.reason.startswith(f"DNS looks unhealthy: {CANARIES}")
        assert dns.details["canaries"] == dict.fromkeys(
            ["gmail.com", "outlook.com", "yahoo.com"], "NXDOMAIN"
        )
        assert dns.details["answer_shares"]["nxdomain"] == 1.0
        assert lab.connections.total() == 0  # nothing was probed on a lying resolver's word

        lab.dns.lying = False
        outcomes = await _verify(verifier, list(expected))
        await verifier.aclose()
        got = {
            address: (outcome.verdict, outcome.extra["evidence"])
            for address, outcome in zip(expected, outcomes, strict=True)
            if isinstance(outcome, EmailResult)
        }
        assert got == expected
        assert _check(verifier.health(), DNS_CHECK).ok
    records = [r for r in caplog.records if r.name == "apexverify.verify.email.health"]
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    infos = [r.getMessage() for r in records if r.levelno == logging.INFO]
    assert warnings == [f"environment check dns turned unhealthy: DNS looks unhealthy: {CANARIES}"]
    assert len(infos) == 1
    assert infos[0].startswith("environment check dns recovered")


async def test_dangling_mx_hosts_are_no_evidence_either_while_dns_lies() -> None:
    """'No mail host' from MX names that do not resolve (E04) is DNS evidence too: while DNS
    looks unhealthy even a cached answer is deferred and forgotten, then asked again."""
    async with email_lab() as lab:
        verifier = EmailVerifier(lab.settings(dns_canary_interval_seconds=0))
        address = f"alice@{lab.domains.dangling}"
        healthy = await _verify(verifier, [address])
        assert isinstance(healthy[0], EmailResult)
        assert healthy[0].wrong
        lab.dns.lying = True
        [lied] = await _verify(verifier, [f"bob@{lab.domains.dangling}"])
        lab.dns.lying = False
        [again] = await _verify(verifier, [address])
        await verifier.aclose()
    assert isinstance(lied, Retry)
    assert lied.reason.startswith("dns_unhealthy: DNS looks unhealthy")
    assert isinstance(again, EmailResult)
    assert again.extra["evidence"] == "no_mail_host"


async def test_without_canaries_nxdomain_stays_hard_evidence() -> None:
    """The documented (not recommended) opt-out: no canaries, a lying resolver wins."""
    async with email_lab() as lab:
        verifier = EmailVerifier(lab.settings(dns_canaries=[]))
        lab.dns.lying = True
        [outcome] = await _verify(verifier, [f"alice@{lab.domains.rejects}"])
        dns = _check(verifier.health(), DNS_CHECK)
        await verifier.aclose()
    assert isinstance(outcome, EmailResult)
    assert outcome.wrong
    assert dns.ok
    assert "canaries disabled" in dns.reason


# -- DNS: the check itself (fake probe, fake clock) ----------------------------------------


async def test_canary_checks_are_shared_and_repeated_only_when_stale() -> None:
    clock = FakeClock()
    asked: list[str] = []
    release = asyncio.Event()

    async def probe(name: str) -> MailDomain:
        asked.append(name)
        await release.wait()
        return MailDomain("ok", hosts=(f"mx.{name}",))

    health = DnsHealth(["a.example", "b.example"], 60.0, probe, clock=clock)
    waiting = [asyncio.ensure_future(health.check_fresh()) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    checks = await asyncio.gather(*waiting)
    assert asked == ["a.example", "b.example"]  # five callers, one canary check
    assert all(check.ok for check in checks)
    clock.now += 59
    await health.check_fresh()
    assert len(asked) == 2  # fresh within the interval
    clock.now += 1
    await health.check_fresh()
    assert len(asked) == 4  # stale: asked again before deciding
    await health.aclose()


@pytest.mark.parametrize(
    ("answers", "ok", "reason"),
    [
        ({"a.example": "ok", "b.example": "error"}, True, "canaries resolved"),
        (
            {"a.example": "error", "b.example": "error"},
            False,
            "DNS looks unhealthy: no canary resolved (a.example: timed out; b.example: timed out)",
        ),
        (
            {"a.example": "ok", "b.example": "no_mail"},
            False,
            "DNS looks unhealthy: canary b.example answered with no mail host",
        ),
    ],
)
async def test_which_canary_answers_fail_the_check(
    answers: dict[str, str], ok: bool, reason: str
) -> None:
    async def probe(name: str) -> MailDomain:
        status = answers[name]
        return MailDomain(status, reason="timed out" if status == "error" else "")  # type: ignore[arg-type]

    health = DnsHealth(list(answers), 60.0, probe)
    check = await health.check_fresh()
    assert check.ok is ok
    assert check.reason.startswith(reason), check.reason


def test_answer_shares_fail_the_check_on_servfail_and_timeouts_not_on_nxdomain() -> None:
    async def never(name: str) -> MailDomain:
        raise AssertionError("no canaries configured")

    junk = DnsHealth([], 60.0, never)
    for _ in range(200):
        junk.record("nxdomain")  # a junk list: legitimately all dead domains
    check = junk.check()
    assert check.ok
    assert check.details["answer_shares"]["nxdomain"] == 1.0
    assert "100% NXDOMAIN" in check.reason

    broken = DnsHealth([], 60.0, never)
    for index in range(ERROR_SHARE_MIN_ANSWERS):
        broken.record("servfail" if index % 2 else "timeout")
    check = broken.check()
    assert not check.ok
    assert check.reason == (
        f"DNS looks unhealthy: 100% of the last {ERROR_SHARE_MIN_ANSWERS} answers were"
        " SERVFAIL or timeouts"
    )


# -- outbound SMTP ---------------------------------------------------------------------------

SILENT_IPS = ["127.0.0.31", "127.0.0.32", "127.0.0.33"]
NOBODY_IPS = ["127.0.0.35", "127.0.0.36", "127.0.0.37"]  # no server: connection refused
GREETER_IP = "127.0.0.34"


@asynccontextmanager
async def blocked_lab() -> AsyncIterator[tuple[Settings, dict[str, list[str]]]]:
    """Three domains whose MX hosts accept and never greet, three whose MX hosts refuse,
    one that answers (the rejects behaviour)."""
    kinds = {"silent": SILENT_IPS, "refused": NOBODY_IPS, "greets": [GREETER_IP]}
    zone: list[str] = []
    domains: dict[str, list[str]] = {}
    for kind, ips in kinds.items():
        for number, ip in enumerate(ips, 1):
            domain = f"{kind}{number}.blocked.lab-example.com"
            zone += [f"{domain}. 300 IN MX 10 mx.{domain}.", f"mx.{domain}. 300 IN A {ip}"]
            domains.setdefault(kind, []).append(f"alice@{domain}")
    port = free_port([*SILENT_IPS, *NOBODY_IPS, GREETER_IP])
    recorder = LabRecorder()
    servers = [
        await serve_behaviour("silent", SILENT_IPS, port, recorder),
        await serve_behaviour("rejects", [GREETER_IP], port, recorder),
    ]
    try:
        with LabDnsServer("\n".join(zone) + "\n") as dns:
            yield (
                Settings(
                    dns_nameservers=[dns.nameserver],
                    smtp_port=port,
                    smtp_timeout_seconds=0.3,
                    smtp_greylist_retry_seconds=0.0,
                    smtp_allow_private_networks=True,
                ),
                domains,
            )
    finally:
        for server in servers:
            server.close()


@pytest.mark.parametrize(
    ("kind", "failure"),
    [
        ("silent", "accepted the connection but never greeted within 0.3 s"),
        ("refused", "refused the connection"),
    ],
)
async def test_blocked_outbound_smtp_defers_connect_failures(kind: str, failure: str) -> None:
    async with blocked_lab() as (settings, domains):
        verifier = EmailVerifier(settings)
        smtp = _check(verifier.health(), SMTP_CHECK)
        assert smtp.ok
        assert smtp.reason == "no recent SMTP attempts"
        outcomes = await _verify(verifier, domains[kind])
        smtp = _check(verifier.health(), SMTP_CHECK)
        # A domain that answers: outbound SMTP works, so dead MX hosts are evidence again.
        [greeted] = await _verify(verifier, domains["greets"])
        [decided] = await _verify(verifier, domains[kind][:1])
        recovered = _check(verifier.health(), SMTP_CHECK)
        await verifier.aclose()
    reason = f"outbound SMTP looks blocked: 3 of 3 recent MX hosts {failure}"
    assert not smtp.ok
    assert smtp.reason == reason
    assert not smtp.affects_readiness  # reported, does not take the process out of service
    for outcome in outcomes:
        assert isinstance(outcome, Retry), outcome  # at the last attempt: not a final unknown
        assert outcome.reason.startswith(f"smtp_unhealthy: {reason}; not treating")
    assert isinstance(greeted, EmailResult)
    assert greeted.valid
    assert recovered.ok
    assert isinstance(decided, EmailResult)
    assert decided.unknown


def test_smtp_health_needs_distinct_hosts_and_forgets_old_failures() -> None:
    clock = FakeClock()
    health = SmtpHealth(10.0, clock=clock)
    health.record("mx1.example", "silent")
    health.record("mx1.example", "silent")
    assert health.check().ok  # one dead MX host proves nothing
    health.record("mx2.example", "connect_timeout")
    check = health.check()
    assert not check.ok  # every host this process tried (2) failed, none greeted
    assert check.reason == (
        "outbound SMTP looks blocked: 2 of 2 recent MX hosts failed before greeting "
        "(1 accepted the connection but never greeted within 10 s, "
        "1 did not accept the connection within 10 s)"
    )
    health.record("mx3.example", "greeted")
    assert health.check().ok
    for host in ("mx4.example", "mx5.example"):
        health.record(host, "refused")
    assert health.check().ok  # three hosts seen: two failures are not enough any more
    health.record("mx6.example", "dropped")
    # Hosts that never greeted us failing together: the dead mail hosts at the tail of a
    # batch, not a block (their addresses end unknown after their attempts, not deferred).
    assert health.check().ok
    health.record("mx3.example", "silent")  # a host that greeted us before fails too
    check = health.check()
    assert not check.ok
    assert check.reason.startswith("outbound SMTP looks blocked: 4 of 4 recent MX hosts")
    clock.now += SMTP_RECENT_SECONDS + 1
    check = health.check()
    assert check.ok
    assert check.reason == "no recent SMTP attempts"


# -- the interfaces around it -----------------------------------------------------------------


async def test_factory_reports_the_email_engine_checks_and_others_report_none() -> None:
    async with email_lab() as lab:
        factory = EngineFactory(lab.settings())
        names = [c.name for c in factory.health()]  # built for it
        assert names == [DNS_CHECK, SMTP_CHECK, "smtp_blocks"]
        dns, smtp, blocks = await factory.check_health()
        assert blocks.ok
        assert not blocks.affects_readiness  # a block is a warning
        assert dns.ok, dns
        assert dns.reason.startswith("canaries resolved"), dns
        assert dns.details["canaries"] == dict.fromkeys(
            ["gmail.com", "outlook.com", "yahoo.com"], "ok"
        )
        lab.dns.lying = True
        lab_settings = lab.settings(dns_canary_interval_seconds=0)
        lying, *_ = await EngineFactory(lab_settings).check_health()
        await factory.aclose()
    assert smtp.ok
    assert smtp.reason == "no recent SMTP attempts"
    assert not lying.ok
    assert lying.affects_readiness
    assert SandboxVerifier("email").health() == []
    assert await SandboxVerifier("phone").check_health() == []


def _documented_deferrals() -> dict[str, str]:
    text = RESULTS_MD.read_text(encoding="utf-8")
    section = text.split("### Unhealthy environment", 1)[1].split("\n#", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        if re.match(r"\|\s*U\d+\s*\|", line):
            cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
            _row, check, evidence, _applies, outcome = cells
            reason = re.fullmatch(r"Retry`, reason `(\w+)", outcome)
            assert reason is not None, outcome
            rows[evidence] = reason[1]
            assert check == {"dns_unhealthy": "dns", "smtp_unhealthy": "smtp_outbound"}[reason[1]]
    return rows


def test_the_documented_table_is_the_engine_table() -> None:
    assert _documented_deferrals() == {
        evidence.value: deferral.value for evidence, deferral in DEFERRED_WHILE.items()
    }
    assert {Evidence.NXDOMAIN, Evidence.NO_MAIL_HOST} == {
        e for e, d in DEFERRED_WHILE.items() if d is Deferral.DNS_UNHEALTHY
    }
