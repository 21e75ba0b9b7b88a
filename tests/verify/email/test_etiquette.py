"""A polite prober: QUIT after every refusal that ends a session, idle connections closed at
the idle limit, one warning for the default SMTP identity (issue #14, part 4)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from apexverify.settings import Settings
from apexverify.verify import registry
from apexverify.verify.base import VerifyContext, VerifyItem
from apexverify.verify.email.engine import EmailVerifier
from apexverify.verify.email.pool import IdlePool
from apexverify.verify.email.smtp import (
    ProbeConfig,
    ProbeConnection,
    SessionResult,
    Target,
    run_session,
)
from apexverify.verify.registry import EngineFactory
from tests.labs.smtp_lab import email_lab

RECIPIENT = "alice@scripted.lab"
EHLO_OK = b"250-scripted.lab\r\n250 PIPELINING"


@dataclass
class Scripted:
    """A scripted SMTP server: one reply per verb, every command recorded per connection."""

    greeting: bytes
    answers: dict[str, bytes]
    port: int = 0
    sessions: list[list[str]] = field(default_factory=list)
    quit_at: list[float] = field(default_factory=list)  # time.monotonic() of each QUIT

    def verbs(self, session: int = 0) -> list[str]:
        return [command.split(" ", 1)[0].upper() for command in self.sessions[session]]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        commands: list[str] = []
        self.sessions.append(commands)
        writer.write(self.greeting + b"\r\n")
        try:
            while line := await reader.readline():
                command = line.decode().strip()
                commands.append(command)
                verb = command[:4].upper()
                if verb == "QUIT":
                    self.quit_at.append(time.monotonic())
                writer.write(self.answers.get(verb, b"250 2.0.0 OK") + b"\r\n")
                await writer.drain()
                if verb == "QUIT":
                    break
        except ConnectionError:
            pass
        finally:
            writer.close()


@asynccontextmanager
async def scripted_smtp(
    greeting: bytes = b"220 scripted.lab ESMTP", **answers: bytes
) -> AsyncIterator[Scripted]:
    replies = {"EHLO": EHLO_OK, "QUIT": b"221 2.0.0 Bye", **answers}
    scripted = Scripted(greeting, replies)
    server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
    scripted.port = server.sockets[0].getsockname()[1]
    try:
        yield scripted
    finally:
        server.close()


def _config(port: int) -> ProbeConfig:
    return ProbeConfig(
        port=port, timeout=2.0, helo_name="probe.lab-example.com", mail_from="probe@lab.example"
    )


async def _session(scripted: Scripted) -> SessionResult:
    target = Target("mx.scripted.lab", "127.0.0.1")
    return await run_session(target, [RECIPIENT], _config(scripted.port))


async def _until(condition: object, seconds: float = 5.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


# -- QUIT after refusals ----------------------------------------------------------------


@pytest.mark.parametrize("greeting", [b"554 5.7.1 you are on our block list", b"421 busy"])
async def test_quit_follows_a_refused_greeting(greeting: bytes) -> None:
    async with scripted_smtp(greeting) as server:
        result = await _session(server)
        await _until(lambda: server.sessions and server.sessions[0])
    assert result.session_reply is not None
    assert result.session_reply.code == int(greeting[:3])
    assert server.sessions == [["QUIT"]]  # nothing else: no EHLO to a refusing server


@pytest.mark.parametrize("code", [b"554 5.7.1 sender blocked", b"550 5.1.8 bad sender", b"451"])
async def test_quit_follows_a_refused_mail_from(code: bytes) -> None:
    async with scripted_smtp(MAIL=code) as server:
        result = await _session(server)
    assert result.session_reply is not None
    assert result.session_reply.code == int(code[:3])
    assert result.answers == {}
    assert server.verbs() == ["EHLO", "MAIL", "QUIT"]  # no RCPT after a refused sender


async def test_quit_follows_refused_ehlo_and_helo() -> None:
    async with scripted_smtp(EHLO=b"550 5.7.1 go away", HELO=b"550 5.7.1 go away") as server:
        result = await _session(server)
    assert result.failure is not None
    assert server.verbs() == ["EHLO", "HELO", "QUIT"]


async def test_quit_follows_a_refused_rset() -> None:
    async with scripted_smtp(RSET=b"554 5.5.1 no") as server:
        result = await _session(server)
    assert result.answers[RECIPIENT].code == 250
    assert server.verbs() == ["EHLO", "MAIL", "RCPT", "RSET", "QUIT"]


async def test_a_refused_starttls_is_ended_with_quit_before_going_plain() -> None:
    ehlo_tls = b"250-scripted.lab\r\n250 STARTTLS"
    async with scripted_smtp(EHLO=ehlo_tls, STAR=b"454 4.7.0 TLS not available") as server:
        result = await _session(server)
    assert result.answers[RECIPIENT].code == 250  # the plain-text retry did the work
    assert server.verbs(0) == ["EHLO", "STARTTLS", "QUIT"]
    assert server.verbs(1) == ["EHLO", "MAIL", "RCPT", "RSET", "QUIT"]


async def test_the_engine_says_quit_to_a_554_banner() -> None:
    async with email_lab() as lab:
        verifier = EmailVerifier(lab.settings())
        [_outcome] = await verifier.verify_many(
            [VerifyItem(f"alice@{lab.domains.banner}")], VerifyContext()
        )
        await verifier.aclose()
        await _until(lambda: [b for b, _ in lab.recorder.quits if b == "banner"])
        assert lab.connections["banner"] == 1


# -- idle connections ---------------------------------------------------------------------


async def _idle_connection(server: Scripted) -> ProbeConnection:
    connection = ProbeConnection(Target("mx.scripted.lab", "127.0.0.1"), _config(server.port))
    result = SessionResult(connection.target)
    assert await connection.open(result)
    await connection.transact([RECIPIENT], result)
    assert connection.usable
    return connection


async def test_the_reaper_quits_an_idle_connection_at_the_idle_limit() -> None:
    idle = 1.0
    async with scripted_smtp() as server:
        pool = IdlePool(per_key=5, total=10, idle_seconds=idle)
        connections = [await _idle_connection(server) for _ in range(2)]
        assert pool._reaper is None  # started lazily, with the first idle connection
        put_at = time.monotonic()
        for connection in connections:
            pool.put("127.0.0.1", connection)
        await _until(lambda: len(server.quit_at) == 2, seconds=idle + 3)
        reaper = pool._reaper
        assert reaper is not None
        await _until(reaper.done)  # nothing idle left: the reaper ends
        await pool.aclose()
    for quit_at in server.quit_at:
        # Never before the limit, never more than a second after it (the bound).
        assert idle <= quit_at - put_at <= idle + 1.0
    assert not any(connection.usable for connection in connections)


async def test_aclose_stops_the_reaper_and_quits_what_is_idle() -> None:
    async with scripted_smtp() as server:
        pool = IdlePool(per_key=5, total=10, idle_seconds=60.0)
        pool.put("127.0.0.1", await _idle_connection(server))
        reaper = pool._reaper
        assert reaper is not None
        assert not reaper.done()
        await pool.aclose()
        assert reaper.cancelled()
        assert server.verbs() == ["EHLO", "MAIL", "RCPT", "RSET", "QUIT"]


async def test_no_pooled_engine_connection_outlives_the_idle_limit_by_a_second() -> None:
    idle = 1.0
    async with email_lab() as lab:
        verifier = EmailVerifier(lab.settings(), idle_seconds=idle)
        addresses = [f"alice@{lab.domains.rejects}", f"bob@{lab.domains.catchall}"]
        started = time.monotonic()  # every connection became idle after this
        await verifier.verify_many([VerifyItem(a) for a in addresses], VerifyContext())
        assert not lab.recorder.quits  # pooled, not closed
        await _until(lambda: len(lab.recorder.quits) == 2, seconds=idle + 3)
        await verifier.aclose()
    assert {behaviour for behaviour, _ in lab.recorder.quits} == {"rejects", "catchall"}
    for _behaviour, quit_at in lab.recorder.quits:
        assert quit_at - started <= idle + 1.0


# -- the default SMTP identity ----------------------------------------------------------


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == registry.__name__ and r.levelno == logging.WARNING
    ]


def test_the_default_helo_name_and_sender_warn_once_per_process(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "_identity_warned", False)
    settings = Settings(dns_nameservers=["127.0.0.1"])
    with caplog.at_level(logging.WARNING, logger=registry.__name__):
        EngineFactory(settings).check()
        EngineFactory(settings).check()  # a second factory in the same process: quiet
    [message] = _warnings(caplog)
    assert "APEXVERIFY_SMTP_HELO_NAME and APEXVERIFY_SMTP_MAIL_FROM are still the default" in (
        message
    )
    assert "PTR" in message
    assert "SPF" in message
    assert "docs/deployment.md" in message


def test_a_real_identity_does_not_warn_and_half_of_one_does(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "_identity_warned", False)
    own = Settings(
        dns_nameservers=["127.0.0.1"],
        smtp_helo_name="verify.example.com",
        smtp_mail_from="probe@example.com",
    )
    with caplog.at_level(logging.WARNING, logger=registry.__name__):
        EngineFactory(own).check()
        assert _warnings(caplog) == []
        EngineFactory(own.replace(smtp_mail_from="probe@verify.apexverify.local")).check()
    [message] = _warnings(caplog)
    assert message.startswith("APEXVERIFY_SMTP_MAIL_FROM is still the default")
