"""SOCKS5 proxies for outbound SMTP: a pool with one stable proxy per MX address and a
breaker per proxy (``APEXVERIFY_SMTP_SOCKS5_PROXY``, ``docs/politeness.md``, "Proxies").

Choice: rendezvous hashing of (proxy, MX address) over the proxies that are up. An MX
address always sees the same proxy (the same source IP) while that proxy is up; when it goes
down only the MX addresses it carried move, each to its next-ranked proxy, and they come back
once it is up again. The hash is keyed (blake2b), not Python's per-process ``hash``, so every
worker sends one MX through the same proxy when they share the list.

Breaker: :data:`FAILURES_TO_OPEN` consecutive failures to reach a proxy (TCP connect, SOCKS5
greeting, authentication, a refusal that is about the proxy) mark it down for
:data:`OPEN_SECONDS`; its connections fail over to the next-ranked proxy at once, so no
session is lost to a dead proxy. After that period it is re-checked: the next connection
ranked to it is a trial (one at a time), and ``check_fresh`` (``/readyz``) tries a SOCKS5
greeting with it, so an idle process notices the recovery too. A success closes the breaker,
a failure opens it for another period.

What the proxy says about the destination (refused, unreachable, no answer in time) is
evidence about the MX, not the proxy: it is raised as a connection error or a timeout, as a
direct connection would, and counts as a success of the proxy. This SOCKS5 client is our own
(RFC 1928 CONNECT, RFC 1929 user name and password) because telling those phases apart is
the breaker's whole point: a library raising one timeout for "the proxy is dead" and "the MX
is slow" would open healthy proxies' breakers on slow MX hosts.

Without a proxy up, connecting fails at once with :class:`ProxyUnavailable` (never a direct
connection: operators use proxies because port 25 is blocked, or to keep their own IP out).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from ..base import HealthCheck

log = logging.getLogger(__name__)

PROXY_CHECK = "smtp_proxies"
# Consecutive connect failures that mark a proxy down: one refused connection can be a
# restart; three in a row (failing over each time, so they cost no session) cannot.
FAILURES_TO_OPEN = 3
# How long a proxy stays down before it is re-checked.
OPEN_SECONDS = 30.0
# Proxies tried for one connection: bounds the wait when several are unreachable at once.
MAX_ATTEMPTS = 3

ProxyState = Literal["up", "down", "rechecking"]
Clock = Callable[[], float]

# SOCKS5 CONNECT replies (RFC 1928 section 6) that are about the destination: the proxy
# works, the MX does not answer it.
_DESTINATION_REPLIES = {
    1: "general failure",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
}
# ... and those that are about the proxy itself (it will not carry this connection).
_PROXY_REPLIES = {
    2: "connection not allowed by ruleset",
    7: "command not supported",
    8: "address type not supported",
}


class ProxyFailed(OSError):
    """This proxy could not be used (unreachable, not SOCKS5, authentication refused)."""


class ProxyUnavailable(OSError):
    """No proxy is up: the connection is not attempted."""


class DestinationRefused(ConnectionRefusedError):
    """The proxy works and reports the destination refused or unreachable."""


@dataclass(frozen=True)
class ProxyEndpoint:
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @property
    def label(self) -> str:
        """``host:port`` without credentials: what logs and health checks show."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def key(self) -> str:
        # The user name is part of the identity: some providers pick the exit IP by it.
        return f"{self.username}@{self.label}" if self.username is not None else self.label


def parse_proxy(entry: str) -> ProxyEndpoint:
    """One entry: ``host:port``, ``user:pass@host:port`` or ``socks5://[user:pass@]host:port``
    (``%``-escape ``,`` ``:`` ``@`` inside credentials). Raises ``ValueError``."""
    parts = urlsplit(entry if "://" in entry else f"socks5://{entry}")
    if parts.scheme != "socks5" or not parts.hostname:
        raise ValueError("a SOCKS5 proxy must be [socks5://][user:pass@]host:port")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not port:
        raise ValueError("a SOCKS5 proxy needs a port from 1 to 65535")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return ProxyEndpoint(parts.hostname, port, username, password)


def parse_proxies(spec: str) -> list[ProxyEndpoint]:
    """The comma-separated setting as endpoints, duplicates dropped, order kept."""
    entries = [entry.strip() for entry in spec.split(",") if entry.strip()]
    return list(dict.fromkeys(parse_proxy(entry) for entry in entries))


def _score(endpoint: ProxyEndpoint, address: str) -> int:
    digest = hashlib.blake2b(f"{endpoint.key}|{address}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass
class _Breaker:
    failures: int = 0  # consecutive
    down_until: float | None = None  # None: up
    trial: bool = False  # a re-check is under way
    last_error: str = ""


class ProxyPool:
    """The configured proxies, their breakers, and the SOCKS5 connect through them.

    State is changed on the event loop only; :meth:`check` may be read from the metrics
    thread (it reads a few attributes and changes nothing)."""

    def __init__(
        self,
        endpoints: Sequence[ProxyEndpoint],
        *,
        timeout: float,
        failures_to_open: int = FAILURES_TO_OPEN,
        open_seconds: float = OPEN_SECONDS,
        clock: Clock = time.monotonic,
    ) -> None:
        if not endpoints:
            raise ValueError("a proxy pool needs at least one proxy")
        self.endpoints = tuple(endpoints)
        self.timeout = timeout
        self.failures_to_open = max(1, failures_to_open)
        self.open_seconds = open_seconds
        self._clock = clock
        self._breakers = {endpoint: _Breaker() for endpoint in self.endpoints}

    @classmethod
    def from_setting(cls, spec: str, *, timeout: float, **kwargs: Any) -> ProxyPool | None:
        """The pool of ``APEXVERIFY_SMTP_SOCKS5_PROXY``; None when it is empty."""
        endpoints = parse_proxies(spec)
        return cls(endpoints, timeout=timeout, **kwargs) if endpoints else None

    # -- choice ------------------------------------------------------------------------

    def ranked(self, address: str) -> list[ProxyEndpoint]:
        """Every proxy, in the order ``address`` prefers them (whatever their state)."""
        return sorted(self.endpoints, key=lambda endpoint: _score(endpoint, address), reverse=True)

    def choice(self, address: str) -> ProxyEndpoint | None:
        """The proxy a new connection to ``address`` goes through now (None: none is up)."""
        candidates = self._candidates(address)
        return candidates[0] if candidates else None

    def state(self, endpoint: ProxyEndpoint) -> ProxyState:
        breaker = self._breakers[endpoint]
        if breaker.down_until is None:
            return "up"
        if breaker.trial or self._clock() >= breaker.down_until:
            return "rechecking"
        return "down"

    def _candidates(self, address: str) -> list[ProxyEndpoint]:
        # Proxies that are up, and those due a re-check with none under way, in rank order.
        now = self._clock()
        return [
            endpoint
            for endpoint in self.ranked(address)
            if (breaker := self._breakers[endpoint]).down_until is None
            or (now >= breaker.down_until and not breaker.trial)
        ]

    # -- connecting --------------------------------------------------------------------

    async def connect(self, address: str, port: int) -> socket.socket:
        """A connected socket to ``address``:``port`` through the proxy ``address`` prefers,
        failing over along its ranking. Raises :class:`ProxyUnavailable` when no proxy could
        be used, and the destination's refusal (``OSError``) or ``TimeoutError`` as is."""
        failures: list[str] = []
        for endpoint in self._candidates(address)[:MAX_ATTEMPTS]:
            breaker = self._breakers[endpoint]
            if breaker.down_until is not None:
                if breaker.trial:  # another connection took the re-check meanwhile
                    continue
                breaker.trial = True
            try:
                sock = await _tunnel(endpoint, address, port, step_seconds=self.timeout)
            except ProxyFailed as exc:
                self._failed(endpoint, str(exc))
                failures.append(f"{endpoint.label}: {exc}")
                continue
            except OSError:  # the destination's refusal or timeout: the proxy answered
                self._succeeded(endpoint)
                raise
            finally:
                breaker.trial = False
            self._succeeded(endpoint)
            return sock
        raise ProxyUnavailable(self._unavailable_reason(failures))

    def _unavailable_reason(self, failures: list[str]) -> str:
        if failures:
            return "no SOCKS5 proxy could be reached: " + "; ".join(failures)
        return f"no SOCKS5 proxy is up ({len(self.endpoints)} down, re-checked shortly)"

    def _succeeded(self, endpoint: ProxyEndpoint) -> None:
        breaker = self._breakers[endpoint]
        if breaker.down_until is not None:
            log.info("SOCKS5 proxy %s is up again", endpoint.label)
        breaker.failures, breaker.down_until, breaker.last_error = 0, None, ""

    def _failed(self, endpoint: ProxyEndpoint, error: str) -> None:
        breaker = self._breakers[endpoint]
        breaker.failures += 1
        breaker.last_error = error
        was_up = breaker.down_until is None
        if breaker.failures >= self.failures_to_open or not was_up:
            breaker.down_until = self._clock() + self.open_seconds
            if was_up:
                log.warning(
                    "SOCKS5 proxy %s is down (%d connect failures in a row, the last: %s): "
                    "its MX hosts go through the other proxies; re-checked in %g s",
                    endpoint.label,
                    breaker.failures,
                    error,
                    self.open_seconds,
                )

    # -- health ------------------------------------------------------------------------

    async def check_fresh(self) -> HealthCheck:
        """The check after re-checking (a SOCKS5 greeting) every proxy due a re-check, so
        that ``/readyz`` sees a recovery even while nothing is verified."""
        due = [endpoint for endpoint in self.endpoints if self.state(endpoint) == "rechecking"]
        await asyncio.gather(*(self._recheck(endpoint) for endpoint in due))
        return self.check()

    async def _recheck(self, endpoint: ProxyEndpoint) -> None:
        breaker = self._breakers[endpoint]
        if breaker.trial:
            return
        breaker.trial = True
        try:
            sock = await _greeted(endpoint, step_seconds=self.timeout)
        except ProxyFailed as exc:
            self._failed(endpoint, str(exc))
        else:
            sock.close()
            self._succeeded(endpoint)
        finally:
            breaker.trial = False

    def check(self) -> HealthCheck:
        """``smtp_proxies``: fails while any proxy is down; affects readiness only when
        every proxy is down (then no SMTP connection can be made)."""
        rows = [self._row(endpoint) for endpoint in self.endpoints]
        down = [row for row in rows if row["state"] != "up"]
        up = len(rows) - len(down)
        if not down:
            reason = f"{up} SOCKS5 {'proxy is' if up == 1 else 'proxies are'} up"
        else:
            listed = ", ".join(f"{row['proxy']} ({row['last_error']})" for row in down)
            reason = f"{len(down)} of {len(rows)} SOCKS5 proxies down: {listed}"
        return HealthCheck(
            PROXY_CHECK,
            ok=not down,
            reason=reason,
            details={"up": up, "down": len(down), "proxies": rows},
            affects_readiness=up == 0,
        )

    def _row(self, endpoint: ProxyEndpoint) -> dict[str, Any]:
        breaker = self._breakers[endpoint]
        until = breaker.down_until
        return {
            "proxy": endpoint.label,
            "state": self.state(endpoint),
            "consecutive_failures": breaker.failures,
            "recheck_in_seconds": (
                None if until is None else max(0.0, round(until - self._clock(), 1))
            ),
            "last_error": breaker.last_error,
        }


def proxy_checks(pool: ProxyPool | None) -> list[HealthCheck]:
    """The engine's ``smtp_proxies`` check, when proxies are configured."""
    return [] if pool is None else [pool.check()]


async def fresh_proxy_checks(pool: ProxyPool | None) -> list[HealthCheck]:
    return [] if pool is None else [await pool.check_fresh()]


# -- the SOCKS5 client (RFC 1928, RFC 1929) ---------------------------------------------


async def _tunnel(
    endpoint: ProxyEndpoint, address: str, port: int, *, step_seconds: float
) -> socket.socket:
    """A socket connected through ``endpoint`` to ``address``:``port``; each phase (reaching
    the proxy, the proxy reaching the destination) bounded by ``step_seconds``."""
    sock = await _greeted(endpoint, step_seconds=step_seconds)
    try:
        async with asyncio.timeout(step_seconds):
            await _request(sock, address, port, endpoint.label)
    except BaseException as exc:
        sock.close()
        if isinstance(exc, TimeoutError):  # the proxy is still waiting for the MX
            raise TimeoutError(
                f"{address}:{port} did not answer proxy {endpoint.label} in {step_seconds:g} s"
            ) from None
        if isinstance(exc, OSError) and not isinstance(exc, ProxyFailed | DestinationRefused):
            # The proxy reset or broke the connection before it answered our request.
            raise ProxyFailed(_describe(exc)) from None
        raise
    return sock


async def _greeted(endpoint: ProxyEndpoint, *, step_seconds: float) -> socket.socket:
    """A connection to the proxy past its greeting and authentication (raises ProxyFailed)."""
    sock: socket.socket | None = None
    try:
        async with asyncio.timeout(step_seconds):
            sock = await _connect_tcp(endpoint.host, endpoint.port)
            await _authenticate(sock, endpoint)
        return sock
    except BaseException as exc:
        if sock is not None:
            sock.close()
        if isinstance(exc, TimeoutError):
            raise ProxyFailed(f"no answer in {step_seconds:g} s") from None
        if isinstance(exc, ProxyFailed):
            raise
        if isinstance(exc, OSError):
            raise ProxyFailed(_describe(exc)) from None
        raise


def _describe(exc: OSError) -> str:
    # "Connection refused" rather than asyncio's "Connect call failed ('10.0.0.1', 1080)".
    return os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__


async def _connect_tcp(host: str, port: int) -> socket.socket:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    error: OSError = OSError(f"{host} has no address")
    for family, kind, proto, _name, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, sockaddr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise error


async def _authenticate(sock: socket.socket, endpoint: ProxyEndpoint) -> None:
    loop = asyncio.get_running_loop()
    methods = b"\x00\x02" if endpoint.username is not None else b"\x00"
    await loop.sock_sendall(sock, b"\x05" + bytes([len(methods)]) + methods)
    version, method = await _recv_exactly(sock, 2)
    if version != 5:
        raise ProxyFailed("not a SOCKS5 proxy")
    if method == 0x02 and endpoint.username is not None:
        user = endpoint.username.encode()
        password = (endpoint.password or "").encode()
        if len(user) > 255 or len(password) > 255:
            raise ProxyFailed("user name or password longer than 255 bytes")
        request = b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password
        await loop.sock_sendall(sock, request)
        _version, status = await _recv_exactly(sock, 2)
        if status != 0:
            raise ProxyFailed("the proxy refused the user name and password")
    elif method == 0x02:
        raise ProxyFailed("the proxy wants a user name and password")
    elif method != 0x00:
        raise ProxyFailed("the proxy accepts none of our authentication methods")


async def _request(sock: socket.socket, address: str, port: int, label: str) -> None:
    loop = asyncio.get_running_loop()
    try:
        ip = ipaddress.ip_address(address)
        destination = (b"\x01" if ip.version == 4 else b"\x04") + ip.packed
    except ValueError:  # a host name (library use): the proxy resolves it
        name = address.encode("idna")
        destination = b"\x03" + bytes([len(name)]) + name
    await loop.sock_sendall(sock, b"\x05\x01\x00" + destination + port.to_bytes(2, "big"))
    version, reply, _reserved, kind = await _recv_exactly(sock, 4)
    if version != 5:
        raise ProxyFailed("not a SOCKS5 proxy")
    if reply in _DESTINATION_REPLIES:
        raise DestinationRefused(f"proxy {label}: {address}:{port} {_DESTINATION_REPLIES[reply]}")
    if reply != 0:
        raise ProxyFailed(_PROXY_REPLIES.get(reply, f"SOCKS5 reply {reply}"))
    # The bound address, which we do not need: its length depends on its type.
    length = {1: 4, 4: 16}.get(kind)
    if length is None:
        (length,) = await _recv_exactly(sock, 1)
    await _recv_exactly(sock, length + 2)


async def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < size:
        chunk = await loop.sock_recv(sock, size - len(data))
        if not chunk:
            raise ProxyFailed("the proxy closed the connection")
        data += chunk
    return data


__all__ = [
    "FAILURES_TO_OPEN",
    "OPEN_SECONDS",
    "PROXY_CHECK",
    "DestinationRefused",
    "ProxyEndpoint",
    "ProxyFailed",
    "ProxyPool",
    "ProxyUnavailable",
    "fresh_proxy_checks",
    "parse_proxies",
    "parse_proxy",
    "proxy_checks",
]
