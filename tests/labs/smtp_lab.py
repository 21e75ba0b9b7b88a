"""Loopback SMTP servers that each play one behaviour, plus the DNS zone that points at them.

Quick use (an async test)::

    async with email_lab() as lab:
        settings = lab.settings()  # nameserver, port, private networks allowed, short timeouts
        results = await verify_emails([f"alice@{lab.domains.rejects}"], settings)

Every behaviour listens on its own 127.0.0.x address (Linux routes all of 127/8 to loopback)
and the same port (``lab.smtp_port``, also ``settings.smtp_port``). The servers never take
mail: a ``DATA`` command is recorded in ``lab.data_commands`` and leaving ``email_lab()``
raises ``AssertionError`` if any arrived. ``lab.connections`` counts connections per
behaviour, ``lab.rcpt_log`` records every RCPT seen as ``(behaviour, address)``,
``lab.recorder.quits`` every QUIT as ``(behaviour, time.monotonic())``.

Users that exist on the lab servers: :data:`LAB_USERS` (any other local part is unknown,
except on the catch-all server). ``full@`` answers 552 5.2.2 and ``unverifiable@`` 252.

API:

* ``email_lab(latency=0.0)``: async context manager yielding an :class:`EmailLab`;
  ``latency`` delays every SMTP reply (seconds).
* ``EmailLab.nameserver`` ("127.0.0.1:PORT"), ``.smtp_port``, ``.domains`` (a
  :class:`LabDomains`: one attribute per behaviour, documented there), ``.settings(**kw)``
  (a ``Settings`` pointing at the lab), ``.connections`` / ``.rcpt_log`` /
  ``.data_commands`` / ``.recorder.tls_rcpts`` (what the servers saw), ``.dns.resolver.queries``
  (what the DNS server was asked).
* Building blocks for other labs (the benchmark uses them): :class:`LabDnsServer` in
  ``dns_server.py``, :func:`serve_behaviour` (one behaviour on many addresses, one port),
  :func:`free_port`, :class:`LabRecorder`, :func:`rejects_answer`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from apexverify.settings import Settings
from tests.support.server import settings_env

from .dns_server import LabDnsServer

LAB_USERS = frozenset({"alice", "bob", "carol", "info", "postmaster", "δοκιμή"})

# behaviour -> loopback address of its server ("down" has no server: connection refused)
ADDRESSES: dict[str, str] = {
    "rejects": "127.0.0.2",
    "catchall": "127.0.0.3",
    "greylist": "127.0.0.4",
    "drops": "127.0.0.5",
    "silent": "127.0.0.6",
    "down": "127.0.0.7",
    "policy": "127.0.0.8",
    "banner": "127.0.0.9",
    "plain550": "127.0.0.10",
    "m365": "127.0.0.11",
    "tempfail": "127.0.0.12",
    "noutf8": "127.0.0.13",
    "toomany": "127.0.0.14",
    "tls": "127.0.0.15",
    "badtls": "127.0.0.16",
}

BASE = "lab-example.com"
M365_MX = "labtenant-lab-example-com.mail.protection.outlook.com"


@dataclass(frozen=True)
class LabDomains:
    """Mail domains of the lab, one per behaviour (all resolvable through ``lab.nameserver``)."""

    rejects: str = f"rejects.{BASE}"  # 550 5.1.1 for unknown users
    catchall: str = f"catchall.{BASE}"  # 250 for everyone
    greylist: str = f"greylist.{BASE}"  # 451 4.7.1 on first sight of a recipient, then real
    drops: str = f"drops.{BASE}"  # closes the connection at RCPT
    silent: str = f"silent.{BASE}"  # accepts TCP, never says a word
    firstdown: str = f"firstdown.{BASE}"  # MX 10 refuses connections, MX 20 = rejects server
    policy: str = f"policy.{BASE}"  # 550 5.7.1 to every RCPT
    banner: str = f"banner.{BASE}"  # 554 5.7.1 greeting
    plain550: str = f"plain550.{BASE}"  # bare "550 No such user" without enhanced code
    m365: str = f"labtenant.{BASE}"  # MX under mail.protection.outlook.com, 550 5.4.1
    tempfail: str = f"tempfail.{BASE}"  # 250 known users, 450 4.2.1 for everyone else, always
    noutf8: str = f"noutf8.{BASE}"  # like rejects, without SMTPUTF8
    toomany: str = f"toomany.{BASE}"  # 452 4.5.3 after 2 recipients per transaction
    tls: str = f"tls.{BASE}"  # like rejects, offers STARTTLS (self-signed certificate)
    badtls: str = f"badtls.{BASE}"  # offers STARTTLS, then breaks the handshake
    implicit: str = f"implicit.{BASE}"  # no MX, A record -> rejects server
    nullmx: str = f"nullmx.{BASE}"  # MX 0 . (RFC 7505)
    nxdomain: str = f"nosuch.{BASE}"  # not in the zone
    nomail: str = f"nomail.{BASE}"  # exists (TXT) but no MX and no A/AAAA
    dangling: str = f"dangling.{BASE}"  # MX host name does not exist
    servfail: str = f"servfail.{BASE}"  # the DNS server answers SERVFAIL
    private: str = f"private.{BASE}"  # MX -> 10.255.255.1 and 192.168.77.1
    free: str = "gmail.com"  # free provider, served by the rejects server
    disposable: str = "mailinator.com"  # disposable list, served by the catch-all server


def lab_zone(domains: LabDomains) -> str:
    d = domains
    lines = [
        f"{d.nullmx}. 300 IN MX 0 .",
        f'{d.nomail}. 300 IN TXT "v=spf1 -all"',
        f"{d.dangling}. 300 IN MX 10 mx.gone.{BASE}.",
        f"{d.implicit}. 300 IN A {ADDRESSES['rejects']}",
        f"{d.private}. 300 IN MX 10 mx.{d.private}.",
        f"mx.{d.private}. 300 IN A 10.255.255.1",
        f"{d.private}. 300 IN MX 20 mx2.{d.private}.",
        f"mx2.{d.private}. 300 IN A 192.168.77.1",
        f"{d.firstdown}. 300 IN MX 10 mx1.{d.firstdown}.",
        f"mx1.{d.firstdown}. 300 IN A {ADDRESSES['down']}",
        f"{d.firstdown}. 300 IN MX 20 mx2.{d.firstdown}.",
        f"mx2.{d.firstdown}. 300 IN A {ADDRESSES['rejects']}",
        f"{d.m365}. 300 IN MX 0 {M365_MX}.",
        f"{M365_MX}. 300 IN A {ADDRESSES['m365']}",
        f"{d.free}. 300 IN MX 5 mx.{d.free}.",
        f"mx.{d.free}. 300 IN A {ADDRESSES['rejects']}",
        f"{d.disposable}. 300 IN MX 5 mx.{d.disposable}.",
        f"mx.{d.disposable}. 300 IN A {ADDRESSES['catchall']}",
    ]
    for behaviour in (
        "rejects",
        "catchall",
        "greylist",
        "drops",
        "silent",
        "policy",
        "banner",
        "plain550",
        "tempfail",
        "noutf8",
        "toomany",
        "tls",
        "badtls",
    ):
        domain = getattr(d, behaviour)
        lines.append(f"{domain}. 300 IN MX 10 mx.{domain}.")
        lines.append(f"mx.{domain}. 300 IN A {ADDRESSES[behaviour]}")
    return "\n".join(lines) + "\n"


@dataclass
class LabRecorder:
    """What the lab servers saw; shared by all behaviours of one lab."""

    data_commands: list[str] = field(default_factory=list)
    connections: Counter[str] = field(default_factory=Counter)
    rcpt_log: list[tuple[str, str]] = field(default_factory=list)
    tls_rcpts: list[str] = field(default_factory=list)  # behaviours that saw RCPT over TLS
    quits: list[tuple[str, float]] = field(default_factory=list)  # (behaviour, monotonic)


def _local(address: str) -> str:
    return address.rpartition("@")[0].lower()


class LabHandler:
    """aiosmtpd handler: the RCPT answer comes from ``answer(local_part, seen_before)``."""

    def __init__(
        self,
        behaviour: str,
        recorder: LabRecorder,
        answer: Callable[[str, int], str],
        max_rcpt: int = 0,
    ) -> None:
        self.behaviour = behaviour
        self.recorder = recorder
        self.answer = answer
        self.max_rcpt = max_rcpt
        self.seen: Counter[str] = Counter()

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        self.recorder.rcpt_log.append((self.behaviour, address))
        if session.ssl is not None:
            self.recorder.tls_rcpts.append(self.behaviour)
        if self.max_rcpt and len(envelope.rcpt_tos) >= self.max_rcpt:
            return "452 4.5.3 Too many recipients"
        seen = self.seen[address.lower()]
        self.seen[address.lower()] += 1
        reply = self.answer(_local(address), seen)
        if reply.startswith("2"):
            envelope.rcpt_tos.append(address)
        return reply


def _known(local: str) -> bool:
    return local in LAB_USERS


def rejects_answer(local: str, seen: int, known: Callable[[str], bool] = _known) -> str:
    if local == "full":
        return "552 5.2.2 Mailbox full"
    if local == "unverifiable":
        return "252 2.1.5 Cannot VRFY user, but will accept message"
    if known(local):
        return "250 2.1.5 OK"
    return "550 5.1.1 The email account that you tried to reach does not exist"


ANSWERS: dict[str, Callable[[str, int], str]] = {
    "rejects": rejects_answer,
    "noutf8": rejects_answer,
    "toomany": rejects_answer,
    "tls": rejects_answer,
    "catchall": lambda local, seen: "250 2.1.5 OK",
    "greylist": lambda local, seen: (
        "451 4.7.1 Greylisted, please try again later" if not seen else rejects_answer(local, seen)
    ),
    "policy": lambda local, seen: "550 5.7.1 Client host rejected: access denied by policy",
    "plain550": lambda local, seen: "250 OK" if _known(local) else "550 No such user here",
    "m365": lambda local, seen: (
        "250 2.1.5 Recipient OK"
        if _known(local)
        else "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)"
    ),
    "tempfail": lambda local, seen: (
        "250 2.1.5 OK" if _known(local) else "450 4.2.1 Mailbox temporarily unavailable"
    ),
}


class LabSMTP(SMTP):
    """aiosmtpd server that counts connections, refuses DATA and can delay every reply."""

    def __init__(self, handler: LabHandler, *, latency: float = 0.0, **kwargs: Any) -> None:
        super().__init__(handler, hostname=f"mx.{handler.behaviour}.lab", **kwargs)
        self.lab_handler = handler
        self.latency = latency

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.lab_handler.recorder.connections[self.lab_handler.behaviour] += 1
        super().connection_made(transport)

    async def push(self, status: Any) -> None:
        if self.latency:
            await asyncio.sleep(self.latency)
        await super().push(status)

    async def smtp_QUIT(self, arg: str) -> None:
        self.lab_handler.recorder.quits.append((self.lab_handler.behaviour, time.monotonic()))
        await super().smtp_QUIT(arg)

    async def smtp_DATA(self, arg: str) -> None:
        self.lab_handler.recorder.data_commands.append(self.lab_handler.behaviour)
        await self.push("554 5.7.0 Lab servers never accept DATA")


class RawBehaviour(asyncio.Protocol):
    """Hand-written servers for what aiosmtpd will not do: drop, stay silent, 554 banner."""

    def __init__(self, behaviour: str, recorder: LabRecorder) -> None:
        self.behaviour = behaviour
        self.recorder = recorder
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.broken_tls = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.recorder.connections[self.behaviour] += 1
        if self.behaviour in ("drops", "badtls"):
            transport.write(f"220 mx.{self.behaviour}.lab ESMTP\r\n".encode())
        elif self.behaviour == "banner":
            transport.write(b"554 5.7.1 mx.banner.lab: your address is on our block list\r\n")
        # "silent": never writes anything

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if self.broken_tls:
            self.transport.write(b"this is not a TLS record\r\n")
            self.transport.close()
            return
        self.buffer += data
        while b"\r\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            self._line(line.decode("utf-8", "replace"))

    def _line(self, line: str) -> None:
        assert self.transport is not None
        verb = line[:4].upper()
        if verb == "DATA":
            self.recorder.data_commands.append(self.behaviour)
        if self.behaviour == "silent":
            return
        if verb == "QUIT":
            self.recorder.quits.append((self.behaviour, time.monotonic()))
            self.transport.write(b"221 2.0.0 Bye\r\n")
            self.transport.close()
        elif self.behaviour == "banner":
            self.transport.write(b"503 5.5.1 No service\r\n")
        elif verb in ("EHLO", "HELO"):
            self.transport.write(b"250-mx.raw.lab\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
        elif verb == "STAR" and self.behaviour == "badtls":
            # Agree, then answer the TLS ClientHello with garbage: a broken TLS stack.
            self.transport.write(b"220 2.0.0 Ready to start TLS\r\n")
            self.broken_tls = True
        elif verb == "RCPT" and self.behaviour == "badtls":
            address = line[8:].strip("<> ")
            self.recorder.rcpt_log.append((self.behaviour, address))
            answer = rejects_answer(_local(address), 0)
            self.transport.write(answer.encode() + b"\r\n")
        elif verb == "MAIL":
            self.transport.write(b"250 2.1.0 OK\r\n")
        elif verb == "RCPT":
            self.recorder.rcpt_log.append((self.behaviour, line[8:].strip("<> ")))
            self.transport.abort()  # RST in the middle of the transaction
        else:
            self.transport.write(b"250 2.0.0 OK\r\n")


def free_port(hosts: list[str]) -> int:
    """A TCP port that is free on every address in ``hosts``."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port = probe.getsockname()[1]
        try:
            for host in hosts[1:]:
                with socket.socket() as other:
                    other.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no common free port")


async def serve_behaviour(
    behaviour: str,
    hosts: list[str],
    port: int,
    recorder: LabRecorder,
    *,
    latency: float = 0.0,
    answer: Callable[[str, int], str] | None = None,
) -> asyncio.Server:
    """Start one behaviour's server on every address in ``hosts`` (same port)."""
    loop = asyncio.get_running_loop()
    if behaviour in ("drops", "silent", "banner", "badtls"):
        return await loop.create_server(
            lambda: RawBehaviour(behaviour, recorder), host=hosts, port=port
        )
    handler = LabHandler(
        behaviour,
        recorder,
        answer or ANSWERS[behaviour],
        max_rcpt=2 if behaviour == "toomany" else 0,
    )
    utf8 = behaviour != "noutf8"
    tls = _tls_context() if behaviour == "tls" else None
    return await loop.create_server(
        lambda: LabSMTP(handler, latency=latency, enable_SMTPUTF8=utf8, tls_context=tls),
        host=hosts,
        port=port,
    )


def _tls_context() -> ssl.SSLContext:
    """Server context with the self-signed test certificate that ships with aiosmtpd."""
    certs = files("aiosmtpd.tests").joinpath("certs")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certs / "server.crt"), str(certs / "server.key"))
    return context


@dataclass
class EmailLab:
    """A running lab: DNS server, SMTP servers and what they recorded."""

    nameserver: str  # "127.0.0.1:PORT" for Settings.dns_nameservers
    smtp_port: int
    domains: LabDomains
    dns: LabDnsServer
    recorder: LabRecorder

    @property
    def data_commands(self) -> list[str]:
        return self.recorder.data_commands

    @property
    def connections(self) -> Counter[str]:
        return self.recorder.connections

    @property
    def rcpt_log(self) -> list[tuple[str, str]]:
        return self.recorder.rcpt_log

    def values(self, **overrides: Any) -> dict[str, Any]:
        """Settings values that reach the lab: its nameserver and port, loopback allowed,
        short timeouts. ``overrides`` win."""
        values: dict[str, Any] = {
            "dns_nameservers": [self.nameserver],
            "dns_timeout_seconds": 2.0,
            "smtp_port": self.smtp_port,
            "smtp_timeout_seconds": 0.5,
            "smtp_allow_private_networks": True,
            "smtp_helo_name": "probe.lab-example.com",
            "smtp_mail_from": "probe@lab-example.com",
        }
        values.update(overrides)
        return values

    def settings(self, **overrides: Any) -> Settings:
        """:meth:`values` as ``Settings``, with immediate greylist retries unless overridden."""
        return Settings(**self.values(**{"smtp_greylist_retry_seconds": 0.0, **overrides}))

    def server_env(self, **overrides: Any) -> dict[str, str]:
        """:meth:`values` as the environment of a live server (``make_server(**env)``)."""
        return settings_env(self.values(**overrides))


@asynccontextmanager
async def email_lab(*, latency: float = 0.0) -> AsyncIterator[EmailLab]:
    """Start the DNS server and every behaviour; stop them and check no DATA was received."""
    domains = LabDomains()
    dns_server = LabDnsServer(lab_zone(domains), servfail=[domains.servfail]).start()
    recorder = LabRecorder()
    servers: list[asyncio.Server] = []
    listening = [ip for name, ip in ADDRESSES.items() if name != "down"]
    try:
        port = free_port([*listening, ADDRESSES["down"]])
        for behaviour, ip in ADDRESSES.items():
            if behaviour != "down":
                servers.append(
                    await serve_behaviour(behaviour, [ip], port, recorder, latency=latency)
                )
        yield EmailLab(dns_server.nameserver, port, domains, dns_server, recorder)
    finally:
        for server in servers:
            server.close()
        for server in servers:
            server.close_clients() if hasattr(server, "close_clients") else None
        dns_server.stop()
    if recorder.data_commands:
        raise AssertionError(f"lab SMTP servers received DATA: {recorder.data_commands}")
