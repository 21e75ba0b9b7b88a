"""The email engine's environment, measured all the time: does DNS tell the truth, does
outbound SMTP reach anybody?

A firewalled or split-horizon resolver answers NXDOMAIN for every name, and a cloud that
blocks port 25 makes every MX host look dead. Evidence gathered in such an environment says
something about the environment, not about the address, so the engine only treats it as
hard evidence while the matching check below is healthy (``docs/results.md``, "Unhealthy
environment").

DNS (:class:`DnsHealth`):

* canaries: names that must have mail hosts (``APEXVERIFY_DNS_CANARIES``), looked up through
  the same resolver at most every ``APEXVERIFY_DNS_CANARY_INTERVAL_SECONDS``, and on demand
  before an NXDOMAIN or "no mail host" answer is trusted (one check shared by concurrent
  callers). A canary answering NXDOMAIN / no mail host / null MX fails the check (the
  resolver is lying about at least that name); so does every canary failing to answer. One
  canary timing out while the others resolve is reported, not a failure;
* the last :data:`ANSWER_WINDOW` answers to look-ups made for addresses, as shares of
  NOERROR / NXDOMAIN / SERVFAIL / timeout. A high NXDOMAIN share is no failure (a junk list
  is mostly dead domains); SERVFAIL and timeouts reaching :data:`ERROR_SHARE_UNHEALTHY` of at
  least :data:`ERROR_SHARE_MIN_ANSWERS` answers are.

Outbound SMTP (:class:`SmtpHealth`): how each new connection went, per MX host name. Every
greeting (any code: the server is reachable) clears the record; when at least
:data:`BLOCKED_HOSTS` distinct MX hosts (or every distinct host this process has tried, if
fewer, but never fewer than :data:`BLOCKED_MIN_HOSTS`) failed before greeting within
:data:`SMTP_RECENT_SECONDS` and none greeted since, outbound SMTP looks blocked. One dead MX
host proves nothing (abandoned domains have them); several distinct ones with not a single
greeting in between is what a blocked port 25 looks like.

Each check logs one WARNING line when it turns unhealthy and one INFO line when it recovers.
Nothing here imports web, database or metrics code: ``/readyz`` and ``/metrics`` read the
checks through :meth:`~apexverify.verify.base.Verifier.health`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from ..base import HealthCheck
from .mx import AnswerKind, MailDomain
from .smtp import ConnectOutcome

log = logging.getLogger(__name__)

DNS_CHECK = "dns"
SMTP_CHECK = "smtp_outbound"

ANSWER_WINDOW = 200
ERROR_SHARE_MIN_ANSWERS = 50
ERROR_SHARE_UNHEALTHY = 0.5
ANSWER_KINDS: tuple[AnswerKind, ...] = ("noerror", "nxdomain", "servfail", "timeout", "error")

BLOCKED_HOSTS = 3
BLOCKED_MIN_HOSTS = 2
SMTP_RECENT_SECONDS = 600.0
# Failing hosts remembered since the last greeting (only the count up to BLOCKED_HOSTS and
# the most recent reasons matter).
_MAX_FAILED_HOSTS = 64
_MAX_GREETED_HOSTS = 10_000

Clock = Callable[[], float]
CanaryProbe = Callable[[str], Awaitable[MailDomain]]


class _Transitions:
    """Logs a check's changes of state, not its every evaluation (the first state counts as a
    change only when it is unhealthy)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._ok = True
        self._lock = threading.Lock()

    def observe(self, check: HealthCheck) -> HealthCheck:
        with self._lock:
            changed, self._ok = self._ok != check.ok, check.ok
        if changed and not check.ok:
            log.warning("environment check %s turned unhealthy: %s", self.name, check.reason)
        elif changed:
            log.info("environment check %s recovered: %s", self.name, check.reason)
        return check


class AnswerWindow:
    """The kinds of the last ``size`` DNS answers, counted as they come and go (the metrics
    scrape reads it from another thread, hence the lock)."""

    def __init__(self, size: int = ANSWER_WINDOW) -> None:
        self._kinds: deque[AnswerKind] = deque(maxlen=size)
        self._counts: Counter[AnswerKind] = Counter()
        self._lock = threading.Lock()

    def record(self, kind: AnswerKind) -> None:
        with self._lock:
            if len(self._kinds) == self._kinds.maxlen:
                self._counts[self._kinds[0]] -= 1
            self._kinds.append(kind)
            self._counts[kind] += 1

    def shares(self) -> tuple[int, dict[AnswerKind, float]]:
        """(answers in the window, share of each kind)."""
        with self._lock:
            total = len(self._kinds)
            counts = dict(self._counts)
        return total, {kind: counts.get(kind, 0) / total if total else 0.0 for kind in ANSWER_KINDS}


@dataclass(frozen=True)
class _CanaryReport:
    checked_at: float
    answers: dict[str, MailDomain]


def _percent(share: float) -> str:
    return f"{share * 100:.0f}%"


def _names(names: Sequence[str]) -> str:
    return ("canary " if len(names) == 1 else "canaries ") + ", ".join(names)


_LIES = {"nxdomain": "NXDOMAIN", "no_mail": "with no mail host", "null_mx": "with a null MX"}


class DnsHealth:
    """Canary checks (periodic and on demand) and the recent answer shares of one resolver."""

    def __init__(
        self,
        canaries: Sequence[str],
        interval: float,
        probe: CanaryProbe,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        self.canaries = tuple(canaries)
        self.interval = interval
        self.answers = AnswerWindow()
        self._probe = probe
        self._clock = clock
        self._report: _CanaryReport | None = None
        self._task: asyncio.Task[None] | None = None
        self._log = _Transitions(DNS_CHECK)

    def record(self, kind: AnswerKind) -> None:
        """The resolver's answer observer (``MxResolver(on_answer=...)``)."""
        self.answers.record(kind)

    # -- canaries ----------------------------------------------------------------------

    def stale(self) -> bool:
        report = self._report
        return bool(self.canaries) and (
            report is None or self._clock() - report.checked_at >= self.interval
        )

    async def check_fresh(self) -> HealthCheck:
        """The check after running the canaries if their last result is stale; concurrent
        callers wait for the same canary check."""
        if self.stale():
            await asyncio.shield(self._canary_task())
        return self.check()

    def refresh_soon(self) -> None:
        """Start a background canary check if the last one is stale (the periodic part:
        called whenever the engine works)."""
        if self.stale():
            self._canary_task()

    def _canary_task(self) -> asyncio.Task[None]:
        loop = asyncio.get_running_loop()
        task = self._task
        if task is None or task.done() or task.get_loop() is not loop:
            task = self._task = loop.create_task(self._run_canaries())
        return task

    async def _run_canaries(self) -> None:
        answers = await asyncio.gather(*(self._ask(name) for name in self.canaries))
        self._report = _CanaryReport(self._clock(), dict(zip(self.canaries, answers, strict=True)))
        self.check()  # logs a change of state as soon as it is known

    async def _ask(self, name: str) -> MailDomain:
        try:
            return await self._probe(name)
        except Exception as exc:  # a canary must never break verification
            return MailDomain("error", reason=f"{type(exc).__name__}: {exc}")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the check ---------------------------------------------------------------------

    def check(self) -> HealthCheck:
        """The last known state, without any I/O."""
        problems: list[str] = []
        notes: list[str] = []
        report = self._report
        canary_details: dict[str, str] = {}
        if not self.canaries:
            notes.append("canaries disabled (APEXVERIFY_DNS_CANARIES is empty)")
        elif report is None:
            notes.append("canaries not checked yet")
        else:
            canary_details = {
                name: "ok" if answer.status == "ok" else answer.reason or answer.status
                for name, answer in report.answers.items()
            }
            problem = _canary_problem(report)
            age = self._clock() - report.checked_at
            if problem:
                problems.append(problem)
            else:
                notes.append(f"canaries resolved {age:.0f} s ago")
        total, shares = self.answers.shares()
        errors = shares["servfail"] + shares["timeout"] + shares["error"]
        if total >= ERROR_SHARE_MIN_ANSWERS and errors >= ERROR_SHARE_UNHEALTHY:
            problems.append(
                f"{_percent(errors)} of the last {total} answers were SERVFAIL or timeouts"
            )
        elif total:
            notes.append(
                f"last {total} answers: {_percent(shares['nxdomain'])} NXDOMAIN, "
                f"{_percent(shares['servfail'])} SERVFAIL, {_percent(shares['timeout'])} timeout"
            )
        details = {
            "canaries": canary_details,
            "canary_check_age_seconds": (
                round(self._clock() - report.checked_at, 3) if report else None
            ),
            "answers": total,
            "answer_shares": {kind: round(share, 4) for kind, share in shares.items()},
        }
        if problems:
            reason = "DNS looks unhealthy: " + "; ".join(problems)
            return self._log.observe(HealthCheck(DNS_CHECK, False, reason, details))
        return self._log.observe(HealthCheck(DNS_CHECK, True, "; ".join(notes), details))


def _canary_problem(report: _CanaryReport) -> str | None:
    """Why the canaries say the resolver cannot be trusted, or None."""
    lying: dict[str, list[str]] = {}
    failed: list[str] = []
    for name, answer in report.answers.items():
        if answer.status in _LIES:
            lying.setdefault(_LIES[answer.status], []).append(name)
        elif answer.status != "ok":
            failed.append(f"{name}: {answer.reason or answer.status}")
    if lying:
        return "; ".join(f"{_names(names)} answered {what}" for what, names in lying.items())
    if failed and len(failed) == len(report.answers):
        return "no canary resolved (" + "; ".join(failed) + ")"
    return None


_OUTCOME_TEXT: dict[str, str] = {
    "refused": "refused the connection",
    "connect_timeout": "did not accept the connection within {t} s",
    "silent": "accepted the connection but never greeted within {t} s",
    "dropped": "closed the connection before greeting",
}


class SmtpHealth:
    """How recent new SMTP connections went, across distinct MX hosts."""

    def __init__(self, timeout: float, *, clock: Clock = time.monotonic) -> None:
        self.timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._last_attempt: float | None = None
        self._last_greeting: float | None = None
        self._failed: OrderedDict[str, tuple[float, ConnectOutcome]] = OrderedDict()
        self._hosts_seen: set[str] = set()  # only up to BLOCKED_HOSTS: how many is all we need
        # Hosts that greeted us at some point. Hosts that never did failing together is the
        # tail of a batch full of dead mail hosts, not a block of our port 25: a block shows
        # as hosts that used to greet us failing (or as no host ever greeting at all).
        self._greeted_hosts: OrderedDict[str, None] = OrderedDict()
        self._log = _Transitions(SMTP_CHECK)

    def record(self, host: str, outcome: ConnectOutcome) -> None:
        """How opening one new connection to MX ``host`` went."""
        now = self._clock()
        with self._lock:
            self._last_attempt = now
            if len(self._hosts_seen) < BLOCKED_HOSTS:
                self._hosts_seen.add(host)
            if outcome == "greeted":
                self._last_greeting = now
                self._failed.clear()
                self._greeted_hosts.pop(host, None)
                self._greeted_hosts[host] = None
                if len(self._greeted_hosts) > _MAX_GREETED_HOSTS:
                    self._greeted_hosts.popitem(last=False)
            else:
                self._failed.pop(host, None)
                self._failed[host] = (now, outcome)
                if len(self._failed) > _MAX_FAILED_HOSTS:
                    self._failed.popitem(last=False)
        self.check()  # logs a change of state as soon as it happens

    def hosts_needed(self) -> int:
        with self._lock:
            seen = len(self._hosts_seen)
        return max(BLOCKED_MIN_HOSTS, min(BLOCKED_HOSTS, seen))

    def check(self) -> HealthCheck:
        now = self._clock()
        needed = self.hosts_needed()
        with self._lock:
            last_attempt, last_greeting = self._last_attempt, self._last_greeting
            recent_hosts = [
                (host, outcome)
                for host, (at, outcome) in self._failed.items()
                if now - at <= SMTP_RECENT_SECONDS
            ]
            known_good_failing = not self._greeted_hosts or any(
                host in self._greeted_hosts for host, _outcome in recent_hosts
            )
        recent = [outcome for _host, outcome in recent_hosts]
        details: dict[str, object] = {
            "failed_hosts": len(recent),
            "hosts_needed": needed,
            "failures": dict(Counter(recent)),
            "last_greeting_seconds_ago": (
                round(now - last_greeting, 3) if last_greeting is not None else None
            ),
        }
        if last_attempt is None or now - last_attempt > SMTP_RECENT_SECONDS:
            check = HealthCheck(SMTP_CHECK, True, "no recent SMTP attempts", details, False)
        elif len(recent) >= needed and known_good_failing:
            reason = f"outbound SMTP looks blocked: {self._failures_text(recent)}"
            check = HealthCheck(SMTP_CHECK, False, reason, details, False)
        elif last_greeting is not None and now - last_greeting <= SMTP_RECENT_SECONDS:
            greeted = f"an MX host greeted {now - last_greeting:.0f} s ago"
            if recent:
                greeted += f"; {len(recent)} MX host(s) failed before greeting since"
            check = HealthCheck(SMTP_CHECK, True, greeted, details, False)
        else:
            reason = f"{len(recent)} recent MX host(s) failed before greeting, none greeted"
            check = HealthCheck(SMTP_CHECK, True, reason, details, False)
        return self._log.observe(check)

    def _failures_text(self, recent: list[ConnectOutcome]) -> str:
        counts = Counter(recent)
        total = len(recent)
        hosts = f"{total} of {total} recent MX hosts"
        if len(counts) == 1:
            (outcome,) = counts
            return f"{hosts} {self._describe(outcome)}"
        parts = ", ".join(f"{n} {self._describe(o)}" for o, n in counts.most_common())
        return f"{hosts} failed before greeting ({parts})"

    def _describe(self, outcome: ConnectOutcome) -> str:
        return _OUTCOME_TEXT[outcome].format(t=f"{self.timeout:g}")
