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

The SMTP stage (``probing.py``) is polite (docs/politeness.md): it learns each MX's limits
from its replies (``limits.py``: recipients per connection, recipient rate, connections;
shared by every worker through the same store as the breakers), keeps refused recipients per
connection below stock error limits, stops at an MX that blocks us (``breaker.py``), and
holds back what an MX will only take later. A greylisted address's :class:`Retry` carries
``not_before``: the time of its ``4xx`` plus ``APEXVERIFY_SMTP_GREYLIST_RETRY_SECONDS``.
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
from .breaker import Breakers
from .catchall import CatchAllCache, state_from_reply
from .health import DnsHealth, SmtpHealth
from .limits import LimitPolicy, LocalSharedState, MxLimits, SharedState
from .lists import is_disposable, is_free, is_role
from .mx import MailDomain, MxResolver, build_resolver
from .pool import IdlePool
from .probing import DEAD_MX_SECONDS, Answer, MxProber, ProbeStats
from .providers import provider_for_mx
from .proxies import fresh_proxy_checks, proxy_checks
from .replies import classify
from .safety import refusal_reason
from .slots import LocalMxSlots, MxSlots
from .smtp import ProbeConfig, ReplyObserver, Target, ignore_reply
from .syntax import normalize_email
from .typo import suggest_domain
from .verdicts import DEFERRED_WHILE, Deferral, Evidence, Flags, decide, defer, held_back

log = logging.getLogger(__name__)

__all__ = ["DEAD_MX_SECONDS", "EmailVerifier", "ProbeStats", "verify_emails"]

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

_Answer = Answer


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
    retry_at: float | None = None  # epoch: when a retry is due (set when the 4xx arrived)
    held: bool = False  # not probed (the MX's limits): a retry that spends no attempt


def limit_policy(settings: Settings) -> LimitPolicy:
    """The learning of per-MX limits as configured (docs/politeness.md)."""
    return LimitPolicy(
        window=settings.smtp_limit_window_seconds,
        max_rejected=settings.smtp_max_rejected_per_connection,
    )


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
        shared_state: SharedState | None = None,
        limits: LimitPolicy | None = None,
    ) -> None:
        """``shared_state`` holds the learned per-MX limits and the breakers (in Redis in
        scale-out mode, shared with every worker; in this process otherwise); ``limits``
        overrides the policy built from the settings (tests)."""
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
        store = shared_state or LocalSharedState()
        self._breakers = Breakers(store, settings.smtp_breaker_seconds)
        self._prober = MxProber(
            settings,
            self._config,
            pool=self._pool,
            slots=self._slots,
            connections=self._connections,
            limits=MxLimits(store, limits or limit_policy(settings)),
            breakers=self._breakers,
            smtp_health=self._smtp_health,
            stats=self.stats,
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
        self._prober.dead.clear()

    # -- environment health ------------------------------------------------------------

    def health(self) -> list[HealthCheck]:
        proxies = proxy_checks(self._config.proxies)  # smtp_proxies, when configured
        blocks = self._breakers.check()  # smtp_blocks: a warning, never readiness
        return [self._dns_health.check(), self._smtp_health.check(), blocks, *proxies]

    async def check_health(self) -> list[HealthCheck]:
        proxies = await fresh_proxy_checks(self._config.proxies)
        dns = await self._dns_health.check_fresh()
        return [dns, self._smtp_health.check(), self._breakers.check(), *proxies]

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
        if pending.held and pending.retry_at is not None:
            reason = str(pending.extra.get("reason") or "held back by the MX's limits")
            return held_back(reason, pending.retry_at, time.time())
        return self._decide(
            pending.evidence, pending.flags, pending.final, pending.extra, pending.retry_at
        )

    # -- one domain --------------------------------------------------------------------

    def _decide(
        self,
        evidence: Evidence,
        flags: Flags,
        final: bool,
        extra: dict[str, object],
        not_before: float | None = None,
    ) -> Outcome:
        return decide(
            evidence,
            flags,
            final=final,
            retry_after=self.settings.smtp_greylist_retry_seconds,
            extra=extra,
            not_before=not_before,
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
                    answer.evidence,
                    flags,
                    final,
                    extra,
                    domain,
                    answer.unreachable,
                    answer.retry_at,
                    answer.held,
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
        raw = await self._prober.probe(targets, recipients, provider)

        if probe_address is not None:
            probe = raw.pop(probe_address)
            kind = classify(probe.reply, overrides) if probe.reply and not probe.held else None
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


async def verify_emails(
    addresses: Iterable[str],
    settings: Settings,
    *,
    max_attempts: int | None = None,
    verifier: EmailVerifier | None = None,
) -> list[EmailResult]:
    """Library entry: verify ``addresses`` (raw or normalized) and return final results.

    Retries are honoured the way the batch runner honours them: each address is probed
    again when its :class:`Retry` is due (``not_before``: its greylisting ``4xx`` plus
    ``smtp_greylist_retry_seconds``; an address held back by its MX's limits when the MX
    takes it, without spending an attempt), up to ``max_attempts`` (default
    ``settings.max_verify_attempts``). Each domain goes its own pace: a slow MX does not
    delay the re-probes of the others. ``verifier``: an engine to use (and keep open), so
    that what it learnt about the MX hosts carries over to the next call.
    """
    values = list(addresses)
    context = VerifyContext(max_attempts=max_attempts or settings.max_verify_attempts)
    results: list[EmailResult | None] = [None] * len(values)
    groups: dict[str, list[int]] = {}
    for index, value in enumerate(values):
        address = normalize_email(value)
        groups.setdefault(address.rpartition("@")[2] if address else "", []).append(index)
    engine = verifier or EmailVerifier(settings)
    try:
        await asyncio.gather(
            *(
                _verify_group(engine, context, [(i, VerifyItem(values[i])) for i in group], results)
                for group in groups.values()
            )
        )
    finally:
        if verifier is None:
            await engine.aclose()
    return [result for result in results if result is not None]


async def _verify_group(
    verifier: EmailVerifier,
    context: VerifyContext,
    items: list[tuple[int, VerifyItem]],
    results: list[EmailResult | None],
) -> None:
    """One domain's addresses until each has its result: probe those due, wait for the
    next due time, again."""
    waiting = [(0.0, index, item) for index, item in items]  # (due at, index, item)
    while waiting:
        now = time.time()
        due = [(index, item) for at, index, item in waiting if at <= now]
        if not due:
            await asyncio.sleep(min(at for at, _, _ in waiting) - now)
            continue
        waiting = [entry for entry in waiting if entry[0] > now]
        outcomes = await verifier.verify_many([item for _, item in due], context)
        read_at = time.time()
        for (index, item), outcome in zip(due, outcomes, strict=True):
            if isinstance(outcome, Retry):
                attempt = item.attempt + (1 if outcome.consumes_attempt else 0)
                waiting.append((outcome.due_at(read_at), index, VerifyItem(item.value, attempt)))
            else:
                assert isinstance(outcome, EmailResult)
                results[index] = outcome
