"""One SMTP probe session: greeting, EHLO, STARTTLS, MAIL FROM, many RCPT TO, RSET, QUIT.

No DATA is ever sent: the server's RCPT reply is the evidence and nothing is delivered.
Every step is bounded by ``smtp_timeout_seconds`` (aiosmtplib applies it per read), so a
silent server costs one timeout, not a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import aiosmtplib

from .proxies import ProxyPool
from .replies import Reply

# Why a session stopped before answering every recipient.
Failure = Literal["refused", "timeout", "dropped", "too_many"]
# How opening a connection went, as outbound-SMTP health counts it: the server greeted (with
# any code: it is reachable and speaks SMTP), refused the TCP connection, did not accept it
# in time, accepted it and stayed silent, or closed it before greeting.
ConnectOutcome = Literal["greeted", "refused", "connect_timeout", "silent", "dropped"]

_TOO_MANY = "5.3"  # x.5.3 "too many recipients": continue on a fresh connection


@dataclass(frozen=True)
class Target:
    """One mail exchanger address to connect to."""

    host: str  # the MX name (TLS server name, reporting)
    address: str  # the IP we connect to (after the safety check)


@dataclass
class SessionResult:
    target: Target
    answers: dict[str, Reply] = field(default_factory=dict)  # RCPT replies per recipient
    failure: Failure | None = None  # set when the session ended early
    failure_detail: str = ""
    session_reply: Reply | None = None  # greeting/EHLO/MAIL reply that refused the session
    greeted: bool = False  # the server sent its 220 greeting (it is alive and speaking SMTP)
    connected: bool = False  # the TCP connection was accepted (greeted or not)
    tls: Literal["none", "ok", "failed"] = "none"
    smtputf8: bool = False
    # The RCPT reply that stopped the recipients as a limit ("too_many"): nobody's answer.
    limit_reply: Reply | None = None


# What the engine makes of one RCPT reply (``transact``'s ``gate``, docs/politeness.md):
# record it and go on; record it and send no more RCPT in this transaction; or record
# nothing (a limit says nothing about the recipient, who is tried again) and stop.
RcptAction = Literal["continue", "last", "limit"]
RcptGate = Callable[[Reply], RcptAction]


# Told of every SMTP reply received: (command stage, reply code). Operators count them by
# class in /metrics; the engine itself stays free of any metrics library.
ReplyObserver = Callable[[str, int], None]


def ignore_reply(_stage: str, _code: int) -> None:
    return None


@dataclass(frozen=True)
class ProbeConfig:
    port: int
    timeout: float
    helo_name: str
    mail_from: str
    socks5_proxy: str = ""  # the setting: comma-separated proxies (``proxies`` is built from it)
    on_reply: ReplyObserver = field(default=ignore_reply, compare=False)
    # Shared by every connection made with this config: the proxies' breakers live in it.
    proxies: ProxyPool | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.proxies is None and self.socks5_proxy:
            pool = ProxyPool.from_setting(self.socks5_proxy, timeout=self.timeout)
            object.__setattr__(self, "proxies", pool)  # frozen: set once, here


def connect_outcome(result: SessionResult) -> ConnectOutcome:
    """What opening the connection of ``result`` says about the path to the server."""
    if result.greeted:
        return "greeted"
    if result.failure == "timeout":
        return "silent" if result.connected else "connect_timeout"
    return "dropped" if result.connected else "refused"


def _accepted_then_failed(exc: BaseException) -> bool:
    """aiosmtplib reports a server that accepted TCP and then stayed silent or hung up as a
    connect error caused by the read timeout or the disconnect."""
    return isinstance(
        exc.__cause__, aiosmtplib.SMTPTimeoutError | aiosmtplib.SMTPServerDisconnected
    )


def _tls_context() -> ssl.SSLContext:
    # Certificates are not checked: nothing secret crosses the link and many MX hosts use
    # self-signed or mismatched certificates; TLS here only avoids plaintext-only refusals.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


_TLS = _tls_context()


class _PoliteSMTP(aiosmtplib.SMTP):
    """Says QUIT to a refused greeting (RFC 5321 3.1: the server waits for it).

    aiosmtplib raises on a greeting other than 220 and closes the connection itself, before
    the caller could answer; this is the one place where the socket is still open. (The
    server's 221 is not told to the reply observer: its order would precede the greeting's.)
    """

    # aiosmtplib's own (private) signature, called with ``timeout=``.
    async def _create_connection(
        self,
        timeout: float | None,  # noqa: ASYNC109
    ) -> aiosmtplib.SMTPResponse:
        try:
            return await super()._create_connection(timeout)
        except aiosmtplib.SMTPConnectResponseError:
            if self.protocol is not None:
                with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                    step = timeout if timeout is not None else self.timeout
                    await self.protocol.execute_command(b"QUIT", timeout=step)
            raise


async def _open(target: Target, config: ProbeConfig) -> tuple[aiosmtplib.SMTP, Reply]:
    if config.proxies is not None:
        sock = await config.proxies.connect(target.address, config.port)
        client = _PoliteSMTP(
            hostname=target.host,
            sock=sock,
            timeout=config.timeout,
            local_hostname=config.helo_name,
            start_tls=False,
            tls_context=_TLS,
        )
    else:
        client = _PoliteSMTP(
            hostname=target.address,
            port=config.port,
            timeout=config.timeout,
            local_hostname=config.helo_name,
            start_tls=False,
            tls_context=_TLS,
        )
    greeting = await client.connect()
    return client, Reply.parse(greeting.code, greeting.message)


async def _hello(client: aiosmtplib.SMTP, on_reply: ReplyObserver) -> aiosmtplib.SMTPResponse:
    try:
        response = await client.ehlo()
    except aiosmtplib.SMTPHeloError as exc:
        on_reply("ehlo", exc.code)
        if not client.is_connected:
            raise
        try:  # a pre-ESMTP server: no extensions, still probe-able
            response = await client.helo()
        except aiosmtplib.SMTPHeloError as exc:
            on_reply("helo", exc.code)
            raise
        on_reply("helo", response.code)
        return response
    on_reply("ehlo", response.code)
    return response


class ProbeConnection:
    """One SMTP connection that can carry several transactions (MAIL, RCPT..., RSET).

    The engine keeps idle connections for a few seconds so that the next chunk of a batch
    reuses them instead of paying for TCP, greeting, EHLO and STARTTLS again.
    """

    def __init__(self, target: Target, config: ProbeConfig) -> None:
        self.target = target
        self.config = config
        self.client: aiosmtplib.SMTP | None = None
        self.smtputf8 = False
        self.tls: Literal["none", "ok", "failed"] = "none"
        self.transactions = 0
        self.connects = 0  # TCP connections made (2 when STARTTLS failed and we went plain)

    @property
    def usable(self) -> bool:
        return self.client is not None and self.client.is_connected

    async def open(self, result: SessionResult, *, try_tls: bool = True) -> bool:
        """Connect, greet, EHLO, STARTTLS. False (with ``result`` filled in) on failure."""
        stage = "connect"
        try:
            try:
                self.connects += 1
                self.client, greeting = await _open(self.target, self.config)
            except aiosmtplib.SMTPConnectResponseError as exc:
                self.config.on_reply("greeting", exc.code)
                result.greeted = result.connected = True
                result.session_reply = Reply.parse(exc.code, exc.message)
                return False
            self.config.on_reply("greeting", greeting.code)
            result.greeted = result.connected = True
            stage = "ehlo"
            response = await _hello(self.client, self.config.on_reply)
            if response.code >= 400:
                result.session_reply = Reply.parse(response.code, response.message)
                return False
            if try_tls and self.client.supports_extension("starttls"):
                stage = "starttls"
                try:
                    await self._starttls()
                    # extensions may change once encrypted
                    await _hello(self.client, self.config.on_reply)
                    self.tls = "ok"
                except (aiosmtplib.SMTPException, ssl.SSLError, OSError) as exc:
                    # A broken TLS stack on the MX is no evidence about mailboxes: start over
                    # in plain text on a new connection. A refused STARTTLS leaves the
                    # plain session intact: end it with QUIT (after a broken handshake the
                    # stream is garbage and only closing is left).
                    if isinstance(exc, aiosmtplib.SMTPResponseException):
                        await self.quit()
                    self.close()
                    fresh = SessionResult(self.target)
                    opened = await self.open(fresh, try_tls=False)
                    self.tls = "failed"
                    result.greeted, result.connected = fresh.greeted, fresh.connected
                    result.session_reply = fresh.session_reply
                    result.failure, result.failure_detail = fresh.failure, fresh.failure_detail
                    if not opened and not result.failure_detail:
                        result.failure_detail = f"STARTTLS failed: {exc}"
                    return opened
            self.smtputf8 = self.client.supports_extension("smtputf8")
            return True
        except TimeoutError as exc:  # aiosmtplib's and the proxies' timeouts subclass it
            result.failure, result.failure_detail = "timeout", f"timeout during {stage}: {exc}"
            result.connected = result.connected or _accepted_then_failed(exc)
        except aiosmtplib.SMTPServerDisconnected as exc:
            result.failure = "dropped"
            result.failure_detail = f"connection dropped during {stage}: {exc}"
            result.connected = True
        except (aiosmtplib.SMTPException, OSError) as exc:  # proxy errors are OSErrors
            result.failure = "refused" if not result.greeted else "dropped"
            result.failure_detail = f"{stage} failed: {exc}"
            result.connected = result.connected or _accepted_then_failed(exc)
            if isinstance(exc, aiosmtplib.SMTPResponseException):
                await self.quit()  # a refused EHLO and HELO: the server still waits for QUIT
        self.close()
        return False

    async def _starttls(self) -> None:
        """STARTTLS, telling the observer of the server's answer: a refusal (not 220), or a
        220 followed by a failed TLS handshake (aiosmtplib then raises no SMTP response)."""
        assert self.client is not None
        try:
            started = await self.client.starttls(server_hostname=self.target.host, tls_context=_TLS)
        except aiosmtplib.SMTPResponseException as exc:
            self.config.on_reply("starttls", exc.code)
            raise
        except ssl.SSLError:  # the handshake only starts after the server's 220
            self.config.on_reply("starttls", 220)
            raise
        except aiosmtplib.SMTPTimeoutError as exc:
            if not isinstance(exc, aiosmtplib.SMTPReadTimeoutError):  # handshake timed out
                self.config.on_reply("starttls", 220)
            raise
        self.config.on_reply("starttls", started.code)

    async def transact(
        self,
        recipients: Sequence[str],
        result: SessionResult,
        gate: RcptGate | None = None,
    ) -> None:
        """MAIL FROM, one RCPT per recipient, RSET; fills ``result``. Never sends DATA.
        ``gate`` decides after each RCPT reply whether to go on (without one: an ``x.5.3``
        after some answers stops the transaction as a limit)."""
        assert self.client is not None
        client = self.client
        result.greeted = True
        result.smtputf8, result.tls = self.smtputf8, self.tls
        self.transactions += 1
        stage = "mail"
        try:
            mail_args = f"FROM:<{self.config.mail_from}>"
            if self.smtputf8 and not all(r.isascii() for r in recipients):
                mail_args += " SMTPUTF8"
            response = await client.execute_command(b"MAIL", mail_args.encode())
            self.config.on_reply("mail", response.code)
            if response.code >= 300:
                result.session_reply = Reply.parse(response.code, response.message)
                await self.quit()  # the session is over: say so (RFC 5321 4.1.1.10)
                return
            stage = "rcpt"
            for recipient in recipients:
                if not recipient.isascii() and not self.smtputf8:
                    continue  # the caller reports these as "SMTPUTF8 not supported"
                response = await client.execute_command(b"RCPT", f"TO:<{recipient}>".encode())
                self.config.on_reply("rcpt", response.code)
                reply = Reply.parse(response.code, response.message)
                too_many = reply.enhanced is not None and reply.enhanced[2:] == _TOO_MANY
                action = gate(reply) if gate is not None else "continue"
                if action == "limit" or (gate is None and too_many and result.answers):
                    result.failure, result.limit_reply = "too_many", reply
                    break
                result.answers[recipient] = reply
                if response.code == 421:  # service closing: aiosmtplib has closed the socket
                    result.failure, result.failure_detail = "dropped", "421 service closing"
                    break
                if action == "last":
                    break
            stage = "rset"
            if client.is_connected:
                response = await client.execute_command(b"RSET")
                self.config.on_reply("rset", response.code)
                if response.code != 250:
                    await self.quit()  # cannot start a clean transaction on this connection
        except TimeoutError as exc:
            if stage != "rset":
                result.failure, result.failure_detail = "timeout", f"timeout during {stage}: {exc}"
            self.close()
        except (aiosmtplib.SMTPException, OSError) as exc:
            if stage != "rset":
                result.failure = "dropped"
                result.failure_detail = f"connection dropped during {stage}: {exc}"
            self.close()

    async def quit(self) -> None:
        """Polite end of the connection (bounded by the step timeout), then close."""
        client = self.client
        if client is not None and client.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
                try:
                    response = await client.quit()
                except aiosmtplib.SMTPResponseException as exc:  # not 221
                    self.config.on_reply("quit", exc.code)
                    raise
                self.config.on_reply("quit", response.code)
        self.close()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


async def run_session(
    target: Target,
    recipients: Sequence[str],
    config: ProbeConfig,
) -> SessionResult:
    """Probe ``recipients`` on one new connection to ``target``, then QUIT; never raises for
    network trouble (failures are reported in the result)."""
    result = SessionResult(target)
    connection = ProbeConnection(target, config)
    if await connection.open(result):
        await connection.transact(recipients, result)
    await connection.quit()
    return result
