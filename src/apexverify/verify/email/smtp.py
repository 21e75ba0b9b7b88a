"""One SMTP probe session: greeting, EHLO, STARTTLS, MAIL FROM, many RCPT TO, RSET, QUIT.

No DATA is ever sent: the server's RCPT reply is the evidence and nothing is delivered.
Every step is bounded by ``smtp_timeout_seconds`` (aiosmtplib applies it per read), so a
silent server costs one timeout, not a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import aiosmtplib
from python_socks import ProxyError, ProxyTimeoutError
from python_socks.async_.asyncio import Proxy

from .replies import Reply, ReplyKind

# Why a session stopped before answering every recipient.
Failure = Literal["refused", "timeout", "dropped", "too_many"]

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
    tls: Literal["none", "ok", "failed"] = "none"
    smtputf8: bool = False


@dataclass(frozen=True)
class ProbeConfig:
    port: int
    timeout: float
    helo_name: str
    mail_from: str
    socks5_proxy: str = ""


def _tls_context() -> ssl.SSLContext:
    # Certificates are not checked: nothing secret crosses the link and many MX hosts use
    # self-signed or mismatched certificates; TLS here only avoids plaintext-only refusals.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


_TLS = _tls_context()


async def _open(target: Target, config: ProbeConfig) -> tuple[aiosmtplib.SMTP, Reply]:
    if config.socks5_proxy:
        proxy = Proxy.from_url(config.socks5_proxy)
        sock = await proxy.connect(
            dest_host=target.address, dest_port=config.port, timeout=config.timeout
        )
        client = aiosmtplib.SMTP(
            hostname=target.host,
            sock=sock,
            timeout=config.timeout,
            local_hostname=config.helo_name,
            start_tls=False,
            tls_context=_TLS,
        )
    else:
        client = aiosmtplib.SMTP(
            hostname=target.address,
            port=config.port,
            timeout=config.timeout,
            local_hostname=config.helo_name,
            start_tls=False,
            tls_context=_TLS,
        )
    greeting = await client.connect()
    return client, Reply.parse(greeting.code, greeting.message)


async def _hello(client: aiosmtplib.SMTP) -> aiosmtplib.SMTPResponse:
    try:
        return await client.ehlo()
    except aiosmtplib.SMTPHeloError:
        if not client.is_connected:
            raise
        return await client.helo()  # a pre-ESMTP server: no extensions, still probe-able


async def run_session(
    target: Target,
    recipients: Sequence[str],
    config: ProbeConfig,
    overrides: dict[str, ReplyKind] | None = None,
    *,
    try_tls: bool = True,
) -> SessionResult:
    """Probe ``recipients`` on one connection to ``target``; never raises for network trouble."""
    result = SessionResult(target)
    client: aiosmtplib.SMTP | None = None
    stage = "connect"
    try:
        try:
            client, _greeting = await _open(target, config)
        except aiosmtplib.SMTPConnectResponseError as exc:
            result.greeted = True
            result.session_reply = Reply.parse(exc.code, exc.message)
            return result
        result.greeted = True
        stage = "ehlo"
        response = await _hello(client)
        if response.code >= 400:
            result.session_reply = Reply.parse(response.code, response.message)
            return result
        if try_tls and client.supports_extension("starttls"):
            stage = "starttls"
            try:
                await client.starttls(server_hostname=target.host, tls_context=_TLS)
                await _hello(client)  # extensions may change once encrypted
                result.tls = "ok"
            except (aiosmtplib.SMTPException, ssl.SSLError, OSError) as exc:
                # A broken TLS stack on the MX is no evidence about mailboxes: start over in
                # plain text on a new connection.
                client.close()
                retry = await run_session(target, recipients, config, overrides, try_tls=False)
                retry.tls = "failed"
                retry.failure_detail = retry.failure_detail or f"STARTTLS failed: {exc}"
                return retry
        result.smtputf8 = client.supports_extension("smtputf8")
        stage = "mail"
        mail_args = f"FROM:<{config.mail_from}>"
        if result.smtputf8 and not all(r.isascii() for r in recipients):
            mail_args += " SMTPUTF8"
        response = await client.execute_command(b"MAIL", mail_args.encode())
        if response.code >= 300:
            result.session_reply = Reply.parse(response.code, response.message)
            return result
        stage = "rcpt"
        for recipient in recipients:
            if not recipient.isascii() and not result.smtputf8:
                continue  # the caller reports these as "SMTPUTF8 not supported"
            response = await client.execute_command(b"RCPT", f"TO:<{recipient}>".encode())
            reply = Reply.parse(response.code, response.message)
            if reply.enhanced is not None and reply.enhanced[2:] == _TOO_MANY and result.answers:
                result.failure = "too_many"
                break
            result.answers[recipient] = reply
            if response.code == 421:  # service closing: aiosmtplib has closed the socket
                result.failure, result.failure_detail = "dropped", "421 service closing"
                break
        stage = "quit"
        with contextlib.suppress(aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
            if client.is_connected:
                await client.execute_command(b"RSET")
                await client.quit()
    except (TimeoutError, ProxyTimeoutError) as exc:  # aiosmtplib's timeouts subclass it
        if stage != "quit":
            result.failure = "timeout"
            result.failure_detail = f"timeout during {stage}: {exc}"
    except aiosmtplib.SMTPServerDisconnected as exc:
        if stage != "quit":
            result.failure = "dropped"
            result.failure_detail = f"connection dropped during {stage}: {exc}"
    except (aiosmtplib.SMTPException, ProxyError, OSError) as exc:
        if stage != "quit":
            result.failure = "refused" if not result.greeted else "dropped"
            result.failure_detail = f"{stage} failed: {exc}"
    finally:
        if client is not None:
            client.close()
    return result
