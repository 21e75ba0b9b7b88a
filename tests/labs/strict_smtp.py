"""Scripted SMTP servers with the anti-abuse limits of a real Postfix, on loopback.

Each :class:`StrictPolicy` plays one server: Postfix's stock error limits always
(``smtpd_soft_error_limit`` 10: every error reply after the 10th is delayed;
``smtpd_hard_error_limit`` 20: ``421 4.7.0 Error: too many errors`` and disconnect), plus
what the policy turns on, with Postfix's replies:

* ``rcpt_per_connection``: after that many recipients on one connection,
  ``452 4.5.3 Error: too many recipients``;
* ``rcpt_rate=(count, window)``: anvil's client recipient rate, a fixed window from the
  client's first recipient: beyond ``count``, ``450 4.7.1 Error: too many recipients from``;
* ``max_concurrent``: a connection beyond that many open ones gets
  ``421 4.7.0 Error: too many connections from``, then the server hangs up;
* ``connection_rate=(count, window)``: the same for connections per window;
* ``greylist_seconds``: a recipient's first RCPT (and any before that delay passed) gets
  ``451 4.7.1 Greylisted``;
* ``banner``/``mail_reply``/``rcpt_reply``: a fixed greeting, MAIL or RCPT reply (blocks);
  ``special``: the RCPT reply of given local parts.

Users that exist: :data:`USERS` (``user<N>`` with N not a multiple of 5, plus the lab's
names); everyone else is ``550 5.1.1 ... User unknown``. Times are ``time.time()`` so
tests can compare them with ``Retry.not_before``.

    async with strict_lab({"ratelimited": StrictPolicy(rcpt_rate=(10, 1.0))}) as lab:
        settings = lab.settings(smtp_limit_window_seconds=1.0)
        lab.domain("ratelimited")   # "ratelimited.strict-example.com"
        lab.servers["ratelimited"]  # what that server saw (StrictServer)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from apexverify.settings import Settings

from .dns_server import LabDnsServer
from .smtp_lab import free_port

BASE = "strict-example.com"


def known_user(local: str) -> bool:
    if local in {"alice", "bob", "carol", "info", "postmaster"}:
        return True
    return local.startswith("user") and local[4:].isdigit() and int(local[4:]) % 5 != 0


@dataclass(frozen=True)
class StrictPolicy:
    rcpt_per_connection: int | None = None
    rcpt_rate: tuple[int, float] | None = None
    max_concurrent: int | None = None
    connection_rate: tuple[int, float] | None = None
    greylist_seconds: float | None = None
    soft_error_limit: int = 10
    hard_error_limit: int = 20
    error_sleep: float = 0.2  # Postfix sleeps 1 s; shorter keeps tests quick, still visible
    latency: float = 0.0  # every reply delayed
    banner: str | None = None  # e.g. "554 5.7.1 blocked"
    mail_reply: str | None = None
    rcpt_reply: str | None = None
    known: Callable[[str], bool] = known_user
    special: dict[str, str] = field(default_factory=dict)  # local part -> its RCPT reply
    mx_host: str | None = None  # the MX name in DNS (default mx.<domain>)


@dataclass
class Session:
    """One connection as the server saw it."""

    opened: float
    closed: float | None = None
    refused: str | None = None  # the 421 that refused it at connect
    rcpts: list[tuple[float, str, int]] = field(default_factory=list)  # (time, address, code)
    errors: int = 0
    delayed: int = 0  # error replies delayed by the soft error limit
    cut: bool = False  # ended by the hard error limit
    quit: bool = False


class StrictServer:
    """The state shared by every connection of one policy's server."""

    def __init__(self, name: str, policy: StrictPolicy) -> None:
        self.name = name
        self.policy = policy
        self.sessions: list[Session] = []
        self.open = 0
        self.rate_start = 0.0
        self.rate_count = 0
        self.conn_start = 0.0
        self.conn_count = 0
        self.first_seen: dict[str, float] = {}
        self.data = 0

    # -- what tests ask --------------------------------------------------------------------

    @property
    def accepted_sessions(self) -> list[Session]:
        return [s for s in self.sessions if s.refused is None]

    def rcpts(self) -> list[tuple[float, str, int]]:
        return sorted(r for s in self.sessions for r in s.rcpts)

    def codes(self, code: int) -> int:
        return sum(1 for _, _, c in self.rcpts() if c == code)

    def refused_connections(self) -> list[Session]:
        return [s for s in self.sessions if s.refused is not None]

    def overlapping_after(self, since: float) -> int:
        """Connections opened after ``since`` while another accepted one was still open."""
        count = 0
        for session in self.sessions:
            if session.opened <= since:
                continue
            for other in self.accepted_sessions:
                if other is session or other.opened > session.opened:
                    continue
                if other.closed is None or other.closed > session.opened:
                    count += 1
                    break
        return count

    # -- limits ---------------------------------------------------------------------------

    def admit(self, now: float) -> str | None:
        """The 421 refusing a new connection, or None."""
        policy = self.policy
        if policy.max_concurrent is not None and self.open >= policy.max_concurrent:
            return "421 4.7.0 mx.strict Error: too many connections from 127.0.0.1"
        if policy.connection_rate is not None:
            count, window = policy.connection_rate
            if now - self.conn_start >= window:
                self.conn_start, self.conn_count = now, 0
            if self.conn_count >= count:
                return "421 4.7.0 mx.strict Error: too many connections from 127.0.0.1"
            self.conn_count += 1
        return None

    def rcpt_answer(self, session: Session, address: str, now: float) -> str:
        policy = self.policy
        if policy.rcpt_reply is not None:
            return policy.rcpt_reply
        if (
            policy.rcpt_per_connection is not None
            and len(session.rcpts) >= policy.rcpt_per_connection
        ):
            return "452 4.5.3 Error: too many recipients"
        if policy.rcpt_rate is not None:
            count, window = policy.rcpt_rate
            if now - self.rate_start >= window:
                self.rate_start, self.rate_count = now, 0
            if self.rate_count >= count:
                return "450 4.7.1 Error: too many recipients from 127.0.0.1"
            self.rate_count += 1
        local = address.rpartition("@")[0].lower()
        if local in policy.special:
            return policy.special[local]
        if policy.greylist_seconds is not None:
            first = self.first_seen.setdefault(address.lower(), now)
            if now - first < policy.greylist_seconds:
                return f"451 4.7.1 <{address}>: Recipient address rejected: Greylisted"
        if policy.known(local):
            return "250 2.1.5 Ok"
        return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"


class StrictProtocol(asyncio.Protocol):
    """One connection: a line-by-line SMTP state machine (replies written in order)."""

    def __init__(self, server: StrictServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.session = Session(opened=time.time())
        self.buffer = b""
        self.lines: asyncio.Queue[str | None] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.sessions.append(self.session)
        refusal = self.server.admit(self.session.opened)
        if refusal is not None:
            self.session.refused = refusal
            transport.write(refusal.encode() + b"\r\n")
            self.session.closed = time.time()
            transport.close()
            return
        self.server.open += 1
        self.counted = True
        self.task = asyncio.get_running_loop().create_task(self.run())

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            self.lines.put_nowait(line.decode("utf-8", "replace"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lines.put_nowait(None)
        self._closed()

    def _closed(self) -> None:
        if self.counted:
            self.counted = False
            self.server.open -= 1
        if self.session.closed is None:
            self.session.closed = time.time()

    async def reply(self, text: str) -> None:
        assert self.transport is not None
        policy = self.server.policy
        if policy.latency:
            await asyncio.sleep(policy.latency)
        if text[0] in "45":
            if self.session.errors >= policy.soft_error_limit:
                self.session.delayed += 1
                await asyncio.sleep(policy.error_sleep)
            self.session.errors += 1
        if not self.transport.is_closing():
            self.transport.write(text.encode() + b"\r\n")

    async def run(self) -> None:
        assert self.transport is not None
        policy = self.server.policy
        await self.reply(policy.banner or "220 mx.strict ESMTP Postfix")
        while True:
            line = await self.lines.get()
            if line is None:
                return
            if self.session.errors >= policy.hard_error_limit:
                await self.reply("421 4.7.0 mx.strict Error: too many errors")
                self.session.cut = True
                self._closed()
                self.transport.close()
                return
            if not await self.command(line):
                return

    async def command(self, line: str) -> bool:
        assert self.transport is not None
        verb = line[:4].upper()
        policy = self.server.policy
        if verb == "QUIT":
            self.session.quit = True
            await self.reply("221 2.0.0 Bye")
            self._closed()  # the server's process ends here (Postfix counts it gone)
            self.transport.close()
            return False
        if policy.banner is not None and policy.banner.startswith("5"):
            await self.reply("503 5.5.1 Error: no service")
        elif verb in ("EHLO", "HELO"):
            await self.reply("250-mx.strict\r\n250-PIPELINING\r\n250 8BITMIME")
        elif verb == "MAIL":
            await self.reply(policy.mail_reply or "250 2.1.0 Ok")
        elif verb == "RCPT":
            address = line[8:].strip().strip("<>")
            now = time.time()
            answer = self.server.rcpt_answer(self.session, address, now)
            self.session.rcpts.append((now, address, int(answer[:3])))
            await self.reply(answer)
        elif verb == "DATA":
            self.server.data += 1
            await self.reply("554 5.5.1 Error: no valid recipients")
        else:
            await self.reply("250 2.0.0 Ok")
        return True


@dataclass
class StrictLab:
    nameserver: str
    port: int
    servers: dict[str, StrictServer]

    def domain(self, name: str) -> str:
        return f"{name}.{BASE}"

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "dns_nameservers": [self.nameserver],
            "dns_timeout_seconds": 2.0,
            "dns_canaries": [],
            "smtp_port": self.port,
            "smtp_timeout_seconds": 2.0,
            "smtp_allow_private_networks": True,
            "smtp_helo_name": "probe.strict-example.com",
            "smtp_mail_from": "probe@strict-example.com",
            "smtp_greylist_retry_seconds": 0.0,
            "smtp_limit_window_seconds": 1.0,
        }
        values.update(overrides)
        return Settings(**values)


def _zone(names: dict[str, StrictPolicy], ips: dict[str, str]) -> str:
    lines = []
    for name, policy in names.items():
        domain = f"{name}.{BASE}"
        host = policy.mx_host or f"mx.{domain}"
        lines.append(f"{domain}. 300 IN MX 10 {host}.")
        lines.append(f"{host}. 300 IN A {ips[name]}")
    return "\n".join(lines) + "\n"


@asynccontextmanager
async def strict_lab(policies: dict[str, StrictPolicy]) -> AsyncIterator[StrictLab]:
    """One server per policy, each on its own 127.0.3.x address, and their DNS zone."""
    ips = {name: f"127.0.3.{10 + i}" for i, name in enumerate(policies)}
    dns = LabDnsServer(_zone(policies, ips)).start()
    port = free_port(list(ips.values()))
    loop = asyncio.get_running_loop()
    servers: dict[str, StrictServer] = {}
    listening: list[asyncio.Server] = []
    try:
        for name, policy in policies.items():
            server = servers[name] = StrictServer(name, policy)
            listening.append(
                await loop.create_server(partial(StrictProtocol, server), host=ips[name], port=port)
            )
        yield StrictLab(dns.nameserver, port, servers)
    finally:
        for listener in listening:
            listener.close()
        dns.stop()
    sent_data = {name: s.data for name, s in servers.items() if s.data}
    if sent_data:
        raise AssertionError(f"strict servers received DATA: {sent_data}")
