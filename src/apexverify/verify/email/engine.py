"""The email verification engine: syntax, lists, DNS, SMTP and catch-all, then the verdict.

Addresses are grouped by domain so that one connection carries many RCPT commands
(``smtp_rcpt_per_connection``), MX hosts are tried in preference order, connections are
capped per MX (:class:`MxSlots`) and globally (``smtp_max_connections``), and every
inconclusive-but-transient answer (greylisting, timeouts, DNS failures) becomes a
:class:`Retry` so that the batch runner re-probes later instead of hammering at once.

The environment is measured as the engine works (``health.py``): every DNS answer and every
new SMTP connection feeds it. Verdicts are decided once every domain of a call has been
probed, so that evidence an unhealthy environment may have produced (an NXDOMAIN from a
lying resolver, a connect failure behind a blocked port 25) is deferred with a
:class:`Retry` on every attempt instead of becoming ``wrong`` or a final ``unknown``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ...settings import Settings
from ..base import (
    EmailResult,
    HealthCheck,
    Outcome,
    RecordType,
    Retry,
    Verifier,
    VerifyContext,
    VerifyItem,
)
from .catchall import CatchAllCache, state_from_reply
from .health import DnsHealth, SmtpHealth
from .lists import is_disposable, is_free, is_role
from .mx import MailDomain, MxResolver, build_resolver
from .pool import IdlePool
from .providers import provider_for_mx
from .proxies import fresh_proxy_checks, proxy_checks
from .replies import Reply, ReplyKind, classify
from .safety import refusal_reason
from .slots import LocalMxSlots, MxSlots
from .smtp import (
    ProbeConfig,
    ProbeConnection,
    ReplyObserver,
    SessionResult,
    Target,
    connect_outcome,
    ignore_reply,
)
from .syntax import normalize_email
from .typo import suggest_domain
from .verdicts import DEFERRED_WHILE, Deferral, Evidence, Flags, decide, defer

log = logging.getLogger(__name__)

# How long an MX address that refused or never greeted us is skipped: long enough that the
# other chunks of the same batch do not each wait for the same timeout, short enough that a
# delayed re-probe (greylist retry, minutes later) tries it again.
DEAD_MX_SECONDS = 60.0
# Idle connections are kept this long for the next chunk (servers wait minutes, RFC 5321
# 4.5.3.2.7, so a few seconds is safe).
IDLE_SECONDS = 10.0
# Bounds on failover: MX addresses tried per host and in total for one group of recipients.
ADDRESSES_PER_HOST = 2
MAX_TARGETS = 6

_DNS_EVIDENCE = {
    "nxdomain": Evidence.NXDOMAIN,
    "no_mail": Evidence.NO_MAIL_HOST,
    "null_mx": Evidence.NULL_MX,
    "error": Evidence.DNS_ERROR,
}

_KIND_EVIDENCE = {
    ReplyKind.ACCEPTED: Evidence.ACCEPTED,
    ReplyKind.CANNOT_VERIFY: Evidence.CANNOT_VERIFY,
    ReplyKind.USER_UNKNOWN: Evidence.USER_UNKNOWN,
    ReplyKind.BAD_DOMAIN: Evidence.BAD_DOMAIN,
    ReplyKind.MAILBOX_FULL: Evidence.MAILBOX_FULL,
    ReplyKind.POLICY: Evidence.POLICY,
    ReplyKind.TEMPORARY: Evidence.TEMPORARY,
    ReplyKind.UNSPECIFIED: Evidence.UNSPECIFIED,
    ReplyKind.PROTOCOL: Evidence.PROTOCOL,
}

_FAILURE_EVIDENCE = {
    "refused": Evidence.CONNECT_FAILED,
    "timeout": Evidence.TIMEOUT,
    "dropped": Evidence.DROPPED,
}


@dataclass
class ProbeStats:
    """Counters for one engine instance (benchmarks, metrics)."""

    connections_opened: int = 0
    rcpt_commands: int = 0
    sessions_failed: int = 0


@dataclass(frozen=True)
class _Answer:
    """What the SMTP stage learnt about one recipient."""

    evidence: Evidence
    mx_host: str | None = None
    reply: Reply | None = None
    reason: str = ""
    unreachable: bool = False  # no MX host greeted: a connect or greeting failure


@dataclass(frozen=True)
class _Pending:
    """One address's evidence, decided once every domain of the call is done (a blocked
    port 25 seen on the other domains defers this one's connect failure too)."""

    evidence: Evidence
    flags: Flags
    final: bool
    extra: dict[str, object]
    domain: str = ""
    unreachable: bool = False


class EmailVerifier(Verifier):
    """Verifies normalized email addresses; one instance per process, shared by concurrent
    calls (its connection pool and MX/catch-all caches)."""

    record_type: RecordType = "email"
    groups_by_domain = True

    def chunk_size(self, default: int) -> int:
        """Chunks cut by domain hold few domains, so a chunk needs more addresses to keep as
        many connections busy as a shuffled one: 4x the setting. Measured with
        ``bench/lifecycle.py --lab 50000`` (20 ms replies): chunks of 500 reached 49% of one
        ``verify_many`` call, chunks of 2,000 65%; 8 chunks in flight instead of 4 gave no
        more."""
        return default * 4

    def __init__(
        self,
        settings: Settings,
        *,
        mx_slots: MxSlots | None = None,
        on_reply: ReplyObserver = ignore_reply,
        idle_seconds: float = IDLE_SECONDS,  # tests shorten it
    ) -> None:
        self.settings = settings
        self.stats = ProbeStats()
        self._dns_health = DnsHealth(
            settings.dns_canaries, settings.dns_canary_interval_seconds, self._probe_canary
        )
        self._smtp_health = SmtpHealth(settings.smtp_timeout_seconds)
        self._mx = MxResolver(
            build_resolver(settings.dns_nameservers, settings.dns_timeout_seconds),
            on_answer=self._dns_health.record,
        )
        self._slots: MxSlots = mx_slots or LocalMxSlots(settings.smtp_max_connections_per_mx)
        self._connections = asyncio.Semaphore(max(1, settings.smtp_max_connections))
        self._catch_all = CatchAllCache()
        self._dead: dict[str, tuple[float, Evidence, str]] = {}
        self._pool = IdlePool(
            per_key=settings.smtp_max_connections_per_mx,
            total=settings.smtp_max_idle_connections,
            idle_seconds=idle_seconds,
        )
        self._config = ProbeConfig(
            port=settings.smtp_port,
            timeout=settings.smtp_timeout_seconds,
            helo_name=settings.smtp_helo_name,
            mail_from=settings.smtp_mail_from,
            socks5_proxy=settings.smtp_socks5_proxy,
            on_reply=on_reply,
        )

    async def verify_many(
        self, items: Sequence[VerifyItem], context: VerifyContext
    ) -> list[Outcome]:
        self._dns_health.refresh_soon()  # the periodic canary check, while the engine works
        pending: list[_Pending | None] = [None] * len(items)
        groups: dict[str, list[tuple[int, str, bool]]] = {}
        for index, item in enumerate(items):
            # Items arrive normalized; normalizing again is cheap and makes the engine safe
            # to call with raw input (library use, POST /v1/unit).
            address = normalize_email(item.value)
            final = item.attempt >= context.max_attempts
            if address is None:
                pending[index] = _Pending(Evidence.SYNTAX_ERROR, Flags(), True, {})
                continue
            groups.setdefault(address.rpartition("@")[2], []).append((index, address, final))
        await asyncio.gather(
            *(self._guarded(domain, entries, pending) for domain, entries in groups.items())
        )
        missing = [index for index, entry in enumerate(pending) if entry is None]
        if missing:
            raise RuntimeError(f"email engine produced no outcome for items {missing[:5]}")
        return await self._conclude([entry for entry in pending if entry is not None])

    async def aclose(self) -> None:
        await self._dns_health.aclose()
        await self._pool.aclose()
        self._dead.clear()

    # -- environment health ------------------------------------------------------------

    def health(self) -> list[HealthCheck]:
        proxies = proxy_checks(self._config.proxies)  # smtp_proxies, when configured
        return [self._dns_health.check(), self._smtp_health.check(), *proxies]

    async def check_health(self) -> list[HealthCheck]:
        proxies = await fresh_proxy_checks(self._config.proxies)
        return [await self._dns_health.check_fresh(), self._smtp_health.check(), *proxies]

    async def _probe_canary(self, name: str) -> MailDomain:
        return await self._mx.probe(name)

    async def _conclude(self, pending: list[_Pending]) -> list[Outcome]:
        """Outcomes in order: each address's evidence through the verdict table, unless the
        environment that produced it is unhealthy right now (then a deferral)."""
        unhealthy: dict[Deferral, str] = {}
        if any(DEFERRED_WHILE.get(p.evidence) is Deferral.DNS_UNHEALTHY for p in pending):
            # Only hard evidence if the canaries resolved within the interval: check now.
            dns = await self._dns_health.check_fresh()
            if not dns.ok:
                unhealthy[Deferral.DNS_UNHEALTHY] = dns.reason
        if any(p.unreachable for p in pending):
            smtp = self._smtp_health.check()
            if not smtp.ok:
                unhealthy[Deferral.SMTP_UNHEALTHY] = smtp.reason
        return [self._outcome(p, unhealthy) for p in pending]

    def _outcome(self, pending: _Pending, unhealthy: dict[Deferral, str]) -> Outcome:
        deferral = DEFERRED_WHILE.get(pending.evidence)
        applies = deferral is Deferral.DNS_UNHEALTHY or pending.unreachable
        if deferral is not None and deferral in unhealthy and applies:
            if deferral is Deferral.DNS_UNHEALTHY:
                self._mx.forget(pending.domain)  # ask again on the next attempt
            retry_after = self.settings.smtp_greylist_retry_seconds
            return defer(deferral, pending.evidence, unhealthy[deferral], retry_after)
        return self._decide(pending.evidence, pending.flags, pending.final, pending.extra)

    # -- one domain --------------------------------------------------------------------

    def _decide(
        self, evidence: Evidence, flags: Flags, final: bool, extra: dict[str, object]
    ) -> Outcome:
        return decide(
            evidence,
            flags,
            final=final,
            retry_after=self.settings.smtp_greylist_retry_seconds,
            extra=extra,
        )

    async def _guarded(
        self,
        domain: str,
        entries: list[tuple[int, str, bool]],
        pending: list[_Pending | None],
    ) -> None:
        """One domain's failure (a bug, an unexpected library error) must not sink the
        chunk: the runner would retry the whole chunk forever."""
        try:
            await self._verify_domain(domain, entries, pending)
        except Exception as exc:
            log.exception("email verification of domain %s failed", domain)
            for index, address, final in entries:
                if pending[index] is None:
                    local = address.rpartition("@")[0]
                    flags = Flags(is_free=is_free(domain), is_role=is_role(local))
                    extra: dict[str, object] = {"reason": f"{type(exc).__name__}: {exc}"}
                    pending[index] = _Pending(Evidence.ENGINE_ERROR, flags, final, extra, domain)

    async def _verify_domain(
        self,
        domain: str,
        entries: list[tuple[int, str, bool]],
        pending: list[_Pending | None],
    ) -> None:
        free, disposable = is_free(domain), is_disposable(domain)
        suggestion = suggest_domain(domain)

        def finish(answers: dict[str, _Answer], catch_all: str | None) -> None:
            for index, address, final in entries:
                answer = answers[address]
                local = address.rpartition("@")[0]
                flags = Flags(
                    is_free=free,
                    is_role=is_role(local),
                    is_disposable=disposable,
                    is_catch_all=answer.evidence is Evidence.CATCH_ALL,
                )
                reply = answer.reply
                provider = provider_for_mx(answer.mx_host) if answer.mx_host else None
                extra: dict[str, object] = {
                    "did_you_mean": f"{local}@{suggestion}" if suggestion else None,
                    "reason": answer.reason or None,
                    "mx_host": answer.mx_host,
                    "mx_provider": provider.name if provider else None,
                    "smtp_code": reply.code if reply else None,
                    "smtp_enhanced_code": reply.enhanced if reply else None,
                    "smtp_reply": reply.text if reply else None,
                    "catch_all": catch_all,
                }
                pending[index] = _Pending(
                    answer.evidence, flags, final, extra, domain, answer.unreachable
                )

        addresses = list(dict.fromkeys(address for _, address, _ in entries))
        mail = await self._mx.mail_domain(domain)
        if mail.status != "ok":
            answer = _Answer(_DNS_EVIDENCE[mail.status], reason=mail.reason)
            finish(dict.fromkeys(addresses, answer), None)
            return
        if disposable:
            # Disposable inboxes accept anything by design; probing them tells us nothing.
            answer = _Answer(Evidence.DISPOSABLE, reason="disposable domain")
            finish(dict.fromkeys(addresses, answer), None)
            return
        targets, refusals, errors = await self._targets(mail)
        if not targets:
            if refusals:
                answer = _Answer(Evidence.MX_REFUSED, reason="; ".join(refusals))
            elif errors:
                answer = _Answer(Evidence.DNS_ERROR, reason="; ".join(errors))
            else:
                answer = _Answer(Evidence.NO_MAIL_HOST, reason="no MX host has an address")
            finish(dict.fromkeys(addresses, answer), None)
            return
        answers = await self._probe_domain(domain, targets, addresses)
        finish(answers, self._catch_all.state(domain))

    async def _targets(self, mail: MailDomain) -> tuple[list[Target], list[str], list[str]]:
        """Connectable MX addresses in preference order, plus refusals and DNS errors."""
        looked_up = await asyncio.gather(*(self._mx.host_addresses(h) for h in mail.hosts))
        targets: list[Target] = []
        refusals: list[str] = []
        errors: list[str] = []
        for host, found in zip(mail.hosts, looked_up, strict=True):
            if found.status == "error":
                errors.append(f"{host}: {found.reason}")
                continue
            allowed = 0
            for address in found.addresses:
                reason = refusal_reason(
                    address, allow_private=self.settings.smtp_allow_private_networks
                )
                if reason is not None:
                    refusals.append(f"MX {host} refused: {reason}")
                elif allowed < ADDRESSES_PER_HOST:
                    targets.append(Target(host, address))
                    allowed += 1
        return targets[:MAX_TARGETS], refusals, errors

    # -- SMTP --------------------------------------------------------------------------

    async def _probe_domain(
        self, domain: str, targets: list[Target], addresses: list[str]
    ) -> dict[str, _Answer]:
        provider = provider_for_mx(targets[0].host)
        overrides = provider.enhanced_overrides if provider else None
        probe_address = (
            self._catch_all.probe_address(domain) if self._catch_all.needs_probe(domain) else None
        )
        recipients = ([probe_address] if probe_address else []) + addresses
        per_connection = max(1, self.settings.smtp_rcpt_per_connection)
        batches = [
            recipients[i : i + per_connection] for i in range(0, len(recipients), per_connection)
        ]
        raw: dict[str, _Answer] = {}
        for part in await asyncio.gather(
            *(self._probe_batch(targets, batch, overrides) for batch in batches)
        ):
            raw.update(part)

        if probe_address is not None:
            probe = raw.pop(probe_address)
            kind = classify(probe.reply, overrides) if probe.reply else None
            self._catch_all.record(domain, state_from_reply(kind))
        catch_all = self._catch_all.state(domain)

        answers: dict[str, _Answer] = {}
        for address in addresses:
            answer = raw[address]
            if answer.evidence is Evidence.ACCEPTED and catch_all == "yes":
                answer = _Answer(
                    Evidence.CATCH_ALL,
                    answer.mx_host,
                    answer.reply,
                    "the server also accepts a random recipient",
                )
            # A bare 550 stays UNSPECIFIED whatever else the domain answered: a verdict rests
            # on the evidence about this address alone (docs/results.md, "One rule").
            answers[address] = answer
        return answers

    async def _session(self, target: Target, recipients: list[str]) -> SessionResult:
        """One transaction for ``recipients`` on a pooled or new connection to ``target``."""
        connection = self._pool.take(target.address)
        if connection is not None:
            result = SessionResult(target)
            await connection.transact(recipients, result)
            stale = not result.answers and result.session_reply is None and result.failure
            if not stale:
                self._pool.put(target.address, connection)
                return result
            connection.close()  # the server dropped the idle connection: start afresh
        result = SessionResult(target)
        connection = ProbeConnection(target, self._config)
        opened = await connection.open(result)
        self.stats.connections_opened += connection.connects
        self._smtp_health.record(target.host, connect_outcome(result))
        if opened:
            await connection.transact(recipients, result)
        self._pool.put(target.address, connection)
        return result

    def _dead_reason(self, address: str) -> tuple[Evidence, str] | None:
        entry = self._dead.get(address)
        if entry is None:
            return None
        until, evidence, detail = entry
        if time.monotonic() >= until:
            del self._dead[address]
            return None
        return evidence, f"{detail} (not retried for {DEAD_MX_SECONDS:.0f}s)"

    async def _probe_batch(
        self,
        targets: list[Target],
        recipients: list[str],
        overrides: dict[str, ReplyKind] | None,
    ) -> dict[str, _Answer]:
        """Answers for ``recipients``, failing over along ``targets`` (MX preference order)."""
        answers: dict[str, _Answer] = {}
        remaining = list(recipients)
        failure = _Answer(
            Evidence.CONNECT_FAILED, reason="no MX could be reached", unreachable=True
        )
        for target in targets:
            dead = self._dead_reason(target.address)
            if dead is not None:  # only MX addresses that never greeted are marked dead
                failure = _Answer(dead[0], target.host, reason=dead[1], unreachable=True)
                continue
            for _round in range(4):  # more than one round only after "too many recipients"
                async with self._slots.acquire(target.address), self._connections:
                    session = await self._session(target, remaining)
                self.stats.rcpt_commands += len(session.answers)
                for recipient, reply in session.answers.items():
                    evidence = _KIND_EVIDENCE[classify(reply, overrides)]
                    answers[recipient] = _Answer(evidence, target.host, reply)
                if session.greeted and session.session_reply is None and not session.smtputf8:
                    for recipient in remaining:
                        if not recipient.isascii() and recipient not in answers:
                            answers[recipient] = _Answer(
                                Evidence.SMTPUTF8_UNSUPPORTED,
                                target.host,
                                reason="server does not offer SMTPUTF8",
                            )
                remaining = [r for r in remaining if r not in answers]
                if session.session_reply is not None:
                    reply = session.session_reply
                    kind = classify(reply)
                    if kind is ReplyKind.TEMPORARY:
                        # 421/4xx before RCPT: this MX is busy, the next one may not be.
                        failure = _Answer(Evidence.TEMPORARY, target.host, reply)
                        break
                    # Refused before RCPT: about us (sender, IP, HELO), never the mailbox.
                    evidence = Evidence.PROTOCOL if kind is ReplyKind.PROTOCOL else Evidence.POLICY
                    for recipient in remaining:
                        answers[recipient] = _Answer(
                            evidence, target.host, reply, "refused before RCPT"
                        )
                    return answers
                if session.failure in (None, "too_many") and remaining:
                    continue  # fresh connection for the rest
                if session.failure in _FAILURE_EVIDENCE:
                    self.stats.sessions_failed += 1
                    evidence = _FAILURE_EVIDENCE[session.failure]
                    failure = _Answer(
                        evidence,
                        target.host,
                        reason=session.failure_detail,
                        unreachable=not session.greeted,
                    )
                    if not session.greeted:
                        self._dead[target.address] = (
                            time.monotonic() + DEAD_MX_SECONDS,
                            evidence,
                            session.failure_detail,
                        )
                break
            if not remaining:
                break
        for recipient in remaining:
            answers[recipient] = failure
        return answers


async def verify_emails(
    addresses: Iterable[str], settings: Settings, *, max_attempts: int | None = None
) -> list[EmailResult]:
    """Library entry: verify ``addresses`` (raw or normalized) and return final results.

    Retries are honoured by sleeping for the requested delay (``smtp_greylist_retry_seconds``)
    and probing again, up to ``max_attempts`` (default ``settings.max_verify_attempts``).
    """
    values = list(addresses)
    context = VerifyContext(max_attempts=max_attempts or settings.max_verify_attempts)
    results: list[EmailResult | None] = [None] * len(values)
    pending = [(index, VerifyItem(value)) for index, value in enumerate(values)]
    verifier = EmailVerifier(settings)
    try:
        while pending:
            outcomes = await verifier.verify_many([item for _, item in pending], context)
            delay = 0.0
            waiting: list[tuple[int, VerifyItem]] = []
            for (index, item), outcome in zip(pending, outcomes, strict=True):
                if isinstance(outcome, Retry):
                    waiting.append((index, VerifyItem(item.value, item.attempt + 1)))
                    delay = max(delay, outcome.after_seconds)
                else:
                    assert isinstance(outcome, EmailResult)
                    results[index] = outcome
            pending = waiting
            if pending:
                await asyncio.sleep(delay)
    finally:
        await verifier.aclose()
    return [result for result in results if result is not None]
