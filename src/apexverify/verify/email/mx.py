"""Mail-exchanger look-ups with dnspython's async resolver, cached per engine instance.

RFC 5321 section 5.1: MX records by preference; when a domain has no MX record at all its
A/AAAA address is the implicit MX. RFC 7505: a single MX of "." means the domain accepts no
mail. NXDOMAIN (the name does not exist: hard evidence) is kept apart from SERVFAIL and
timeouts (the resolver could not tell: never evidence against the address).

Every answer to a look-up made for an address is told to an observer (``on_answer``) as
one :data:`AnswerKind`: the engine's environment health keeps the recent shares. Canary
look-ups (:meth:`MxResolver.probe`) bypass the cache and the observer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

MailStatus = Literal["ok", "nxdomain", "no_mail", "null_mx", "error"]
# How the resolver answered one query: NOERROR (records or none), NXDOMAIN, SERVFAIL (every
# server failed: dnspython's NoNameservers), no answer in time, anything else.
AnswerKind = Literal["noerror", "nxdomain", "servfail", "timeout", "error"]
AnswerObserver = Callable[[AnswerKind], None]


def ignore_answer(_kind: AnswerKind) -> None:
    return None


def answer_kind(exc: dns.exception.DNSException) -> AnswerKind:
    if isinstance(exc, dns.resolver.NXDOMAIN):
        return "nxdomain"
    if isinstance(exc, dns.resolver.NoNameservers):
        return "servfail"
    if isinstance(exc, dns.exception.Timeout):
        return "timeout"
    return "error"


@dataclass(frozen=True)
class MailDomain:
    """What DNS says about where mail for a domain goes."""

    status: MailStatus
    hosts: tuple[str, ...] = ()  # exchanger names, best preference first
    implicit: bool = False  # no MX record: the domain's own address is the exchanger
    reason: str = ""


@dataclass(frozen=True)
class HostAddresses:
    status: Literal["ok", "nxdomain", "no_address", "error"]
    addresses: tuple[str, ...] = field(default=())
    reason: str = ""


def parse_nameserver(spec: str) -> tuple[str, int]:
    """``"host"``, ``"host:port"`` or ``"[v6]:port"`` -> (host, port)."""
    spec = spec.strip()
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if spec.count(":") == 1:
        host, _, port = spec.partition(":")
        return host, int(port)
    return spec, 53


def build_resolver(nameservers: list[str], timeout: float) -> dns.asyncresolver.Resolver:
    """A resolver using ``nameservers`` (or the system's when empty), ``timeout`` per query."""
    resolver = dns.asyncresolver.Resolver(configure=not nameservers)
    if nameservers:
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(*parse_nameserver(spec)) for spec in nameservers
        ]
    resolver.lifetime = timeout
    resolver.timeout = max(timeout / 2, 0.1)  # leave time for one retry / the next server
    resolver.cache = None  # we cache the interpreted answer ourselves, per batch
    return resolver


T = TypeVar("T")


class _SingleFlight(Generic[T]):
    """Cache of coroutine results keyed by name; concurrent callers share one look-up."""

    def __init__(self) -> None:
        self._entries: dict[str, asyncio.Future[T]] = {}

    async def get(self, key: str, compute: Callable[[], Awaitable[T]]) -> T:
        future = self._entries.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._entries[key] = future
            try:
                future.set_result(await compute())
            except BaseException as exc:
                del self._entries[key]
                future.set_exception(exc)
                future.exception()  # mark retrieved: waiters re-raise it themselves
                raise
        return await asyncio.shield(future)

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)

    def peek(self, key: str) -> T | None:
        """The cached result for ``key``, if a look-up finished successfully."""
        future = self._entries.get(key)
        if future is None or not future.done() or future.exception() is not None:
            return None
        return future.result()


class MxResolver:
    """MX and address look-ups, each name resolved once per instance (one batch run).

    Errors (SERVFAIL, timeouts) are not cached, so a later retry of the same domain asks
    again.
    """

    def __init__(
        self,
        resolver: dns.asyncresolver.Resolver,
        concurrency: int = 64,
        *,
        on_answer: AnswerObserver = ignore_answer,
    ) -> None:
        self._resolver = resolver
        self._on_answer = on_answer
        # A chunk can name a thousand new domains at once; a burst that size overflows the
        # UDP buffers of small resolvers and turns into timeouts (= needless retries).
        self._in_flight = asyncio.Semaphore(concurrency)
        self._domains: _SingleFlight[MailDomain] = _SingleFlight()
        self._hosts: _SingleFlight[HostAddresses] = _SingleFlight()

    async def mail_domain(self, domain: str) -> MailDomain:
        result = await self._domains.get(domain, lambda: self._lookup_domain(domain))
        if result.status == "error":
            self._domains.forget(domain)
        return result

    async def host_addresses(self, host: str) -> HostAddresses:
        result = await self._hosts.get(host, lambda: self._lookup_host(host))
        if result.status == "error":
            self._hosts.forget(host)
        return result

    async def probe(self, domain: str) -> MailDomain:
        """A fresh MX look-up of ``domain`` (canaries): neither cached nor observed."""
        return await self._lookup_domain(domain, observe=False)

    def forget(self, domain: str) -> None:
        """Drop the cached answers for ``domain`` and its exchangers: they were given while
        DNS looked unhealthy, so the next attempt must ask again."""
        mail = self._domains.peek(domain)
        self._domains.forget(domain)
        for host in mail.hosts if mail is not None else ():
            self._hosts.forget(host)

    async def _query(self, name: str, rdtype: str, *, observe: bool) -> dns.resolver.Answer:
        async with self._in_flight:
            try:
                answer = await self._resolver.resolve(
                    name, rdtype, raise_on_no_answer=False, search=False
                )
            except dns.exception.DNSException as exc:
                if observe:
                    self._on_answer(answer_kind(exc))
                raise
        if observe:
            self._on_answer("noerror")
        return answer

    async def _lookup_domain(self, domain: str, *, observe: bool = True) -> MailDomain:
        try:
            answer = await self._query(domain, "MX", observe=observe)
        except dns.resolver.NXDOMAIN:
            return MailDomain("nxdomain", reason="NXDOMAIN")
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            return MailDomain("error", reason=f"MX look-up failed: {type(exc).__name__}")
        except dns.exception.DNSException as exc:
            return MailDomain("error", reason=f"MX look-up failed: {exc}")
        records = [r for r in (answer.rrset or ()) if r.rdtype == dns.rdatatype.MX]
        if records:
            exchanges = sorted(
                ((r.preference, r.exchange.to_text(omit_final_dot=True).lower()) for r in records),
            )
            real = [(pref, host) for pref, host in exchanges if host not in {"", "."}]
            if not real:
                # RFC 7505: "." as the only exchanger means "no mail here", a hard answer.
                return MailDomain("null_mx", reason="null MX (RFC 7505)")
            return MailDomain("ok", hosts=tuple(dict.fromkeys(host for _, host in real)))
        # No MX record: RFC 5321 5.1 implicit MX, if the domain itself has an address.
        addresses = await self._lookup_host(domain, observe=observe)
        if addresses.status == "ok":
            return MailDomain("ok", hosts=(domain,), implicit=True)
        if addresses.status == "error":
            return MailDomain("error", reason=addresses.reason)
        if addresses.status == "nxdomain":
            return MailDomain("nxdomain", reason="NXDOMAIN")
        return MailDomain("no_mail", reason="no MX and no A/AAAA record")

    async def _lookup_host(self, host: str, *, observe: bool = True) -> HostAddresses:
        addresses: list[str] = []
        nxdomain = False
        errors: list[str] = []
        # IPv4 first: many verification hosts have no IPv6 route, and every MX that has an
        # AAAA record practically always has an A record too.
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self._query(host, rdtype, observe=observe)
            except dns.resolver.NXDOMAIN:
                nxdomain = True
                break
            except dns.exception.DNSException as exc:
                errors.append(f"{rdtype} look-up failed: {type(exc).__name__}")
                continue
            addresses.extend(r.to_text() for r in (answer.rrset or ()))
        if addresses:
            return HostAddresses("ok", tuple(addresses))
        if nxdomain:
            return HostAddresses("nxdomain", reason="NXDOMAIN")
        if errors:
            return HostAddresses("error", reason="; ".join(errors))
        return HostAddresses("no_address", reason="no A/AAAA record")
