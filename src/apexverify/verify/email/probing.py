"""The SMTP stage of the engine: the recipients of one domain over its MX hosts, politely.

For each MX address (in preference order, failing over as ``engine.py`` describes) the
recipients wait in one queue, and up to the MX's concurrency of *lanes* work it off: a lane
holds a connection slot, takes (or opens) a connection and sends transactions of recipients
from the queue on it until the queue is empty or the connection has done its share. What the
server says changes what the lanes do (docs/politeness.md):

* a recipients limit (``452``, ``x.5.3``, a rate-limit ``450 4.7.x``; ``replies.py``) stops
  the RCPTs on that connection: it is closed with QUIT, the refused recipient goes back to
  the queue, and the MX's learned limits (``limits.py``) go down;
* at most ``max_rejected`` refused RCPTs per connection (stock Postfix slows down after 10
  and disconnects after 20), then a fresh connection;
* a ``421`` at connect lowers the MX's concurrency to the connections we have open: the
  refused lane ends and its work stays queued for the lanes that are connected;
* a block (``554`` banner, ``5.7.x`` before RCPT, two ``5.7.x`` RCPT refusals in a row)
  opens the breaker of the MX and its provider (``breaker.py``);
* pacing (rate, cool-down, spacing of new connections) is waited for inside the call up to
  ``pace_wait`` seconds; recipients still queued then are held back: they come back as a
  retry at the time the MX will take them, without spending an attempt.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
import weakref
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

from ...settings import Settings
from .breaker import Breakers, mx_key, provider_key
from .health import SmtpHealth
from .limits import (
    LimitPolicy,
    MxLimits,
    MxLimitState,
    burst,
    connected,
    connections_limited,
    rate_limited,
    recipients_limited,
    reserve_connect,
    reserve_rcpts,
    session_clean,
)
from .pool import IdlePool
from .providers import Provider
from .replies import (
    Reply,
    ReplyKind,
    classify,
    connections_limit,
    rate_candidate,
    rcpt_block,
    recipients_limit,
    session_block,
)
from .slots import MxSlots
from .smtp import (
    ProbeConfig,
    ProbeConnection,
    RcptAction,
    RcptGate,
    SessionResult,
    Target,
    connect_outcome,
)
from .verdicts import Evidence

log = logging.getLogger(__name__)

# How long an MX address that refused or never greeted us is skipped: long enough that the
# other chunks of the same batch do not each wait for the same timeout, short enough that a
# delayed re-probe (greylist retry, minutes later) tries it again.
DEAD_MX_SECONDS = 60.0
# Greylisting retries are spread by up to this share of the delay (at most 30 s), so the
# addresses of one pass do not all come back in the same second.
JITTER_SHARE = 0.05
JITTER_MAX_SECONDS = 30.0

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
    limits_hit: int = 0  # replies read as a limit (recipients, rate, connections)
    held_back: int = 0  # recipients returned unprobed, for later (pacing)


@dataclass(frozen=True)
class Answer:
    """What the SMTP stage learnt about one recipient."""

    evidence: Evidence
    mx_host: str | None = None
    reply: Reply | None = None
    reason: str = ""
    unreachable: bool = False  # no MX host greeted: a connect or greeting failure
    retry_at: float | None = None  # epoch: when a retry is due (set when the 4xx arrived)
    held: bool = False  # never probed (the MX's limits): a retry that spends no attempt


@dataclass
class _Use:
    """One connection's life so far, as the server counts it (per session)."""

    answered: int = 0  # RCPT replies that were not a limit
    rejected: int = 0  # RCPT replies >= 400
    definitive: int = 0  # RCPT replies that were not 4xx
    accepted: int = 0  # 2xx RCPT replies


@dataclass
class _Outcome:
    """How one MX address dealt with its part: answers, and for the rest a failure (moved on
    to the next MX when ``move_on``)."""

    answers: dict[str, Answer] = field(default_factory=dict)
    failure: Answer | None = None
    move_on: bool = True


class MxProber:
    """The SMTP stage shared by every call of one engine: pool, slots, limits, breakers."""

    def __init__(
        self,
        settings: Settings,
        config: ProbeConfig,
        *,
        pool: IdlePool,
        slots: MxSlots,
        connections: asyncio.Semaphore,
        limits: MxLimits,
        breakers: Breakers,
        smtp_health: SmtpHealth,
        stats: ProbeStats,
    ) -> None:
        self.settings = settings
        self.config = config
        self.pool = pool
        self.slots = slots
        self.connections = connections
        self.limits = limits
        self.breakers = breakers
        self.smtp_health = smtp_health
        self.stats = stats
        self.policy = limits.policy
        self.dead: dict[str, tuple[float, Evidence, str]] = {}
        self.uses: weakref.WeakKeyDictionary[ProbeConnection, _Use] = weakref.WeakKeyDictionary()
        self.open_now: defaultdict[str, int] = defaultdict(int)  # in lanes, per MX address
        self._recent: defaultdict[tuple[str, str], deque[float]] = defaultdict(deque)

    async def probe(
        self,
        targets: Sequence[Target],
        recipients: Sequence[str],
        provider: Provider | None,
    ) -> dict[str, Answer]:
        """Answers for ``recipients``, failing over along ``targets`` (MX preference order)."""
        answers: dict[str, Answer] = {}
        remaining = list(recipients)
        failure = Answer(Evidence.CONNECT_FAILED, reason="no MX could be reached", unreachable=True)
        for target in targets:
            skipped = await self._skip(target, provider)
            if skipped is not None:
                failure = skipped
                continue
            outcome = await _TargetRun(self, target, remaining, provider).run()
            answers.update(outcome.answers)
            remaining = [r for r in remaining if r not in answers]
            if outcome.failure is not None:
                failure = outcome.failure
            if not remaining or not outcome.move_on:
                break
        for recipient in remaining:
            answers[recipient] = failure
        return answers

    async def _skip(self, target: Target, provider: Provider | None) -> Answer | None:
        """Why ``target`` is not contacted now (dead, or its breaker open), or None."""
        entry = self.dead.get(target.address)
        if entry is not None:
            until, evidence, detail = entry
            if time.monotonic() < until:
                reason = f"{detail} (not retried for {DEAD_MX_SECONDS:.0f}s)"
                return Answer(evidence, target.host, reason=reason, unreachable=True)
            del self.dead[target.address]
        breaker = await self.breakers.open_for(breaker_keys(target, provider))
        if breaker is None:
            return None
        closes = time.strftime("%H:%M:%S", time.gmtime(breaker.until))
        reason = f"{breaker.key} blocks us ({breaker.reason}); not probed until {closes} UTC"
        return Answer(Evidence.BLOCKED, target.host, reason=reason)

    def mark_dead(self, target: Target, evidence: Evidence, detail: str) -> None:
        self.dead[target.address] = (time.monotonic() + DEAD_MX_SECONDS, evidence, detail)

    def greylist_retry_at(self, now: float) -> float:
        delay = self.settings.smtp_greylist_retry_seconds
        jitter = random.uniform(0.0, min(delay * JITTER_SHARE, JITTER_MAX_SECONDS))
        return now + delay + jitter

    def note(self, what: str, mx: str) -> None:
        """One RCPT answered or one connection attempted, as it happens: what a limit
        halves is measured from these (our rate to that MX in the last window)."""
        now = time.time()
        times = self._recent[(what, mx)]
        times.append(now)
        self._prune(times, now)

    def in_window(self, what: str, mx: str) -> int:
        times = self._recent[(what, mx)]
        self._prune(times, time.time())
        return len(times)

    def _prune(self, times: deque[float], now: float) -> None:
        horizon = now - self.policy.window
        while times and (times[0] < horizon or len(times) > 100_000):
            times.popleft()

    async def transact(
        self, connection: ProbeConnection, batch: list[str], result: SessionResult, gate: RcptGate
    ) -> None:
        """One transaction (a seam for tests that count them)."""
        await connection.transact(batch, result, gate)


def breaker_keys(target: Target, provider: Provider | None) -> list[str]:
    keys = [mx_key(target.host)]
    if provider is not None:
        keys.append(provider_key(provider.name))
    return keys


class _TargetRun:
    """One MX address working off one domain's queue of recipients within one call."""

    def __init__(
        self,
        prober: MxProber,
        target: Target,
        recipients: Sequence[str],
        provider: Provider | None,
    ) -> None:
        self.p = prober
        self.target = target
        self.mx = target.address
        self.provider = provider
        self.overrides = provider.enhanced_overrides if provider else None
        self.queue: deque[str] = deque(recipients)
        self.outcome = _Outcome()
        self.stopped = False
        self.deadline = time.time() + prober.policy.pace_wait
        self.held_from: float | None = None  # earliest time the MX takes held recipients
        self.active = 0  # lanes connecting or connected
        self.share = 10**6  # recipients per transaction that spread the queue evenly (run)
        settings = prober.settings
        self.configured = min(
            settings.smtp_max_connections_per_mx,
            provider.max_connections if provider and provider.max_connections else 10**6,
        )
        self.transaction_size = min(
            settings.smtp_rcpt_per_connection,
            provider.rcpt_per_connection if provider and provider.rcpt_per_connection else 10**6,
        )

    @property
    def answers(self) -> dict[str, Answer]:
        return self.outcome.answers

    async def run(self) -> _Outcome:
        state = await self._seeded()
        size = max(1, min(self.transaction_size, state.rcpt_cap or self.transaction_size))
        lanes = max(1, min(self._concurrency(state), math.ceil(len(self.queue) / size)))
        # The queue spread evenly over the lanes it needs: 101 recipients at 50 per
        # transaction go 34 + 34 + 33 on the same three connections, not 50 + 50 + 1. A
        # domain is done when its busiest connection is, and a chunk when its slowest domain
        # is: measured with bench/lifecycle.py --lab 50000, a chunk of 20 domains took 1.5 s
        # instead of 1.9 s (the runner went from 50% to 62% of one call).
        self.share = math.ceil(len(self.queue) / lanes)
        await asyncio.gather(*(self._lane() for _ in range(lanes)))
        if self.queue and not self.stopped:
            self._hold_rest(await self.p.limits.get(self.mx))
        return self.outcome

    async def _seeded(self) -> MxLimitState:
        """The MX's learned state; a provider's documented rate seeds a fresh one."""
        rate = self.provider.recipients_per_minute if self.provider else None
        if not rate:
            return await self.p.limits.get(self.mx)

        def seed(state: MxLimitState) -> MxLimitState | None:
            return None if state != MxLimitState() else replace(state, rate=rate / 60.0)

        return await self.p.limits.apply(self.mx, seed)

    def _concurrency(self, state: MxLimitState) -> int:
        return max(1, min(self.configured, state.concurrency or self.configured))

    # -- a lane ------------------------------------------------------------------------

    async def _lane(self) -> None:
        while self.queue and not self.stopped:
            state = await self.p.limits.get(self.mx)
            if not await self._rcpt_pause_over(state):
                return
            concurrency = self._concurrency(state)
            async with self.p.slots.acquire(self.mx, concurrency), self.p.connections:
                if not self.queue or self.stopped:
                    return
                self.active += 1
                self.p.open_now[self.mx] += 1
                try:
                    connection = self.p.pool.take(self.mx) or await self._connect()
                    if connection is None:
                        if self._lane_ends_after_refusal():
                            return
                        continue
                    keep_going = await self._work(connection)
                finally:
                    self.active -= 1
                    self.p.open_now[self.mx] -= 1
            if not keep_going:
                return

    async def _rcpt_pause_over(self, state: MxLimitState) -> bool:
        """Wait for a cool-down of the MX that ends before the deadline (False, the rest
        held back, when it ends after): no connection is opened only to wait on it."""
        pause = state.rcpt_paused_until
        if state.rate is not None:
            pause = max(pause, state.next_rcpt_at)
        if pause > self.deadline:
            self._hold(pause)
            return False
        now = time.time()
        if pause > now:
            await asyncio.sleep(pause - now)
        return True

    def _lane_ends_after_refusal(self) -> bool:
        # A connect that failed or was refused: the run may have stopped, or other lanes
        # carry the queue (this lane still counts itself); a lone lane tries again
        # (pacing decides when).
        return self.stopped or self.active > 1 or self.held_from is not None

    async def _connect(self) -> ProbeConnection | None:
        """A new connection under the MX's spacing; None (the outcome updated) when it
        could not be had."""
        now = time.time()
        start = now
        if (await self.p.limits.get(self.mx)).connect_gap:  # only then is there a booking
            _, start = await self.p.limits.change(
                self.mx, lambda s: reserve_connect(s, now, self.deadline)
            )
        if start > self.deadline:
            self._hold(start)
            return None
        if start > now:
            await asyncio.sleep(start - now)
        result = SessionResult(self.target)
        connection = ProbeConnection(self.target, self.p.config)
        self.p.note("connect", self.mx)
        opened = await connection.open(result)
        self.p.stats.connections_opened += connection.connects
        self.p.smtp_health.record(self.target.host, connect_outcome(result))
        if opened:
            await self._connected()
            return connection
        await self._refused(result)
        return None

    async def _connected(self) -> None:
        state = await self.p.limits.get(self.mx)
        if state.concurrency is not None or state.connect_gap:
            now = time.time()
            await self.p.limits.apply(
                self.mx, lambda s: connected(s, now, self.configured, self.p.policy)
            )

    async def _refused(self, result: SessionResult) -> None:
        """The connection was not opened: a refusal (limit, block, other) or a failure."""
        reply = result.session_reply
        if reply is None:
            self._failed(result)
        elif connections_limit(reply):
            await self._connections_limit(reply)
        else:
            await self._refused_session(reply, "greeting/EHLO")

    def _failed(self, result: SessionResult) -> None:
        """Refused, timed out or dropped before we could send RCPT: the next MX."""
        self.p.stats.sessions_failed += 1
        failure = result.failure or "dropped"
        evidence = _FAILURE_EVIDENCE.get(failure, Evidence.DROPPED)
        self.outcome.failure = Answer(
            evidence,
            self.target.host,
            reason=result.failure_detail,
            unreachable=not result.greeted,
        )
        if not result.greeted:
            self.p.mark_dead(self.target, evidence, result.failure_detail)
        self._stop(move_on=True)

    async def _connections_limit(self, reply: Reply) -> None:
        """421 at connect: fewer connections to this MX, later; the connected lanes carry
        the queue. With none connected, the rest moves on to the next MX, retried later."""
        now = time.time()
        self.p.stats.limits_hit += 1
        open_now = self.p.open_now[self.mx] - 1  # the other lanes (and chunks) connected
        opened = self.p.in_window("connect", self.mx) - 1  # what it took before refusing
        current = self._concurrency(await self.p.limits.get(self.mx))
        state, changed = await self._learn(
            lambda s: connections_limited(s, open_now, current, opened, now, self.p.policy)
        )
        await self._drain_idle()
        if changed:  # once per limit, not once per connection in flight that met it
            log.info(
                "MX %s (%s) refused a connection (%s): at most %d connection(s), new ones "
                "%.1f s apart",
                self.target.host,
                self.mx,
                reply.text[:80],
                self._concurrency(state),
                state.connect_gap,
            )
        if self.active > 1:
            return
        retry_at = max(state.next_connect_at, self.p.greylist_retry_at(now))
        self.outcome.failure = Answer(
            Evidence.TEMPORARY, self.target.host, reply, retry_at=retry_at
        )
        self._stop(move_on=True)

    async def _learn(
        self, step: Callable[[MxLimitState], MxLimitState | None]
    ) -> tuple[MxLimitState, bool]:
        """Apply a limit to the MX's state atomically: (the state after, whether it changed:
        a limit met by several connections in flight changes it once)."""

        def changing(state: MxLimitState) -> tuple[MxLimitState | None, bool]:
            new = step(state)
            return (None, False) if new is None or new == state else (new, True)

        return await self.p.limits.change(self.mx, changing)

    async def _drain_idle(self) -> None:
        # Idle connections count against us too: close (QUIT) the pooled ones to this MX.
        while (idle := self.p.pool.take(self.mx)) is not None:
            await idle.quit()

    async def _refused_session(self, reply: Reply, stage: str) -> None:
        """Greeting, EHLO or MAIL refused: about us (sender, IP, HELO), never the mailbox."""
        kind = classify(reply)
        if kind is ReplyKind.TEMPORARY:
            # 4xx before RCPT: this MX is busy, the next one may not be.
            retry_at = self.p.greylist_retry_at(time.time())
            self.outcome.failure = Answer(
                Evidence.TEMPORARY, self.target.host, reply, retry_at=retry_at
            )
            self._stop(move_on=True)
            return
        if session_block(reply):
            await self._block(reply, stage)
        evidence = Evidence.PROTOCOL if kind is ReplyKind.PROTOCOL else Evidence.POLICY
        for recipient in self._take_all():
            self.answers[recipient] = Answer(
                evidence, self.target.host, reply, "refused before RCPT"
            )
        self._stop(move_on=False)

    async def _block(self, reply: Reply, stage: str) -> None:
        reason = f"{reply.text[:120]!r} at {stage} from {self.target.host}"
        await self.p.breakers.trip(breaker_keys(self.target, self.provider), reason)

    # -- transactions on one connection -------------------------------------------------

    async def _work(self, connection: ProbeConnection) -> bool:
        """Transactions on ``connection`` while it may carry more; False when the lane
        should end (the run stopped, or the MX holds the rest back)."""
        use = self.p.uses.setdefault(connection, _Use())
        while self.queue and not self.stopped:
            state = await self.p.limits.get(self.mx)
            size = self._batch_size(state, use)
            if size == 0:
                await connection.quit()  # it did its share: a fresh one for the rest
                return True
            now = time.time()
            start = max(now, state.rcpt_paused_until)
            if state.rate is not None:  # paced: book the recipients (atomic, shared)
                book = partial(reserve_rcpts, count=size, now=now, deadline=self.deadline)
                _, start = await self.p.limits.change(self.mx, book)
            if start > self.deadline:
                self._hold(start)
                self.p.pool.put(self.mx, connection)
                return False
            if start > now:
                await asyncio.sleep(start - now)
            batch = [self.queue.popleft() for _ in range(min(size, len(self.queue)))]
            if not batch:
                break
            carry_on = await self._transaction(connection, batch, use, state)
            if not carry_on:
                return not self.stopped
        self.p.pool.put(self.mx, connection)
        return not self.stopped

    def _batch_size(self, state: MxLimitState, use: _Use) -> int:
        if use.rejected >= self.p.policy.max_rejected:
            return 0
        size = min(self.transaction_size, self.share)
        if state.rcpt_cap is not None:
            size = min(size, state.rcpt_cap - use.answered)
        paced = burst(state, self.p.policy)
        if paced is not None:
            size = min(size, paced)
        return max(0, size)

    async def _transaction(
        self, connection: ProbeConnection, batch: list[str], use: _Use, state: MxLimitState
    ) -> bool:
        """One MAIL + RCPTs + RSET; True when the connection may carry another."""
        result = SessionResult(self.target)
        gate, ended = _gate(use, state, self.p.policy, partial(self.p.note, "rcpt", self.mx))
        await self.p.transact(connection, batch, result, gate)
        now = time.time()
        self._record(batch, result, ended.answered_at)
        self.queue.extendleft(reversed([r for r in batch if r not in self.answers]))
        if result.session_reply is not None:
            await self._mail_refused(result.session_reply)
            return False
        if result.limit_reply is not None:
            await self._limit(connection, result.limit_reply, use, batch, now)
            return False
        if result.failure is not None:
            self._failed(result)
            return False
        if ended.block:
            await self._rcpt_block(batch)
            return False
        await self._clean(use, state, now)
        if ended.full:
            await connection.quit()  # its share of refusals or recipients: a fresh one
            return False
        return connection.usable

    def _record(self, batch: list[str], result: SessionResult, times: list[float]) -> None:
        """The answers of one transaction; a 4xx is retried counting from when it came."""
        self.p.stats.rcpt_commands += len(result.answers) + (result.limit_reply is not None)
        for (recipient, reply), at in zip(result.answers.items(), times, strict=True):
            evidence = _KIND_EVIDENCE[classify(reply, self.overrides)]
            retry_at = self.p.greylist_retry_at(at) if evidence is Evidence.TEMPORARY else None
            self.answers[recipient] = Answer(evidence, self.target.host, reply, retry_at=retry_at)
        if result.greeted and result.session_reply is None and not result.smtputf8:
            for recipient in batch:
                if not recipient.isascii() and recipient not in self.answers:
                    self.answers[recipient] = Answer(
                        Evidence.SMTPUTF8_UNSUPPORTED,
                        self.target.host,
                        reason="server does not offer SMTPUTF8",
                    )

    async def _mail_refused(self, reply: Reply) -> None:
        if connections_limit(reply):  # 421 at MAIL: the server sheds connections
            await self._connections_limit(reply)
        else:
            await self._refused_session(reply, "MAIL")

    async def _limit(
        self,
        connection: ProbeConnection,
        reply: Reply,
        use: _Use,
        batch: list[str],
        now: float,
    ) -> None:
        """A recipients or rate limit: no more RCPT here, QUIT, learn, and go on later."""
        self.p.stats.limits_hit += 1
        if recipients_limit(reply):
            answered = use.answered
            state, changed = await self._learn(lambda s: recipients_limited(s, answered, now))
            what = f"at most {state.rcpt_cap} recipient(s) per connection"
        else:
            measured = self.p.in_window("rcpt", self.mx)
            state, changed = await self._learn(
                lambda s: rate_limited(s, measured, now, self.p.policy)
            )
            rate = (state.rate or 0) * 60
            what = f"about {rate:.1f} recipients/min after a {state.rcpt_backoff:.0f} s pause"
        if changed:
            log.info(
                "MX %s (%s) limited us after %d recipient(s) on a connection (%s): %s",
                self.target.host,
                self.mx,
                use.answered,
                reply.text[:80],
                what,
            )
        if use.answered == 0:
            # Refused as the first RCPT of a connection: nothing more to learn here; this
            # recipient is retried later like any 4xx (so a server that always says so ends).
            refused = next(r for r in batch if r not in self.answers)
            self.queue.remove(refused)
            retry_at = max(state.rcpt_paused_until, self.p.greylist_retry_at(now))
            self.answers[refused] = Answer(
                Evidence.TEMPORARY, self.target.host, reply, retry_at=retry_at
            )
        await connection.quit()

    async def _rcpt_block(self, batch: list[str]) -> None:
        """Two policy refusals in a row and nothing accepted: the MX refuses us."""
        last = next((self.answers[r].reply for r in reversed(batch) if r in self.answers), None)
        assert last is not None
        await self._block(last, "RCPT")
        for recipient in self._take_all():
            self.answers[recipient] = Answer(
                Evidence.BLOCKED, self.target.host, reason=f"blocked: {last.text[:120]}"
            )
        self._stop(move_on=False)

    async def _clean(self, use: _Use, state: MxLimitState, now: float) -> None:
        if state.rcpt_cap is None and state.rate is None:
            return  # nothing learnt about this MX: nothing to give back (no store write)
        answered = use.answered
        await self.p.limits.apply(self.mx, lambda s: session_clean(s, answered, now, self.p.policy))

    # -- the end of a run ----------------------------------------------------------------

    def _hold(self, start: float) -> None:
        self.held_from = start if self.held_from is None else min(self.held_from, start)

    def _stop(self, *, move_on: bool) -> None:
        self.stopped = True
        self.outcome.move_on = move_on

    def _take_all(self) -> list[str]:
        taken = list(self.queue)
        self.queue.clear()
        return taken

    def _hold_rest(self, state: MxLimitState) -> None:
        """Recipients still queued when the lanes ended: held back until the MX takes them,
        spread the way its pacing would send them (no attempt spent)."""
        start = self.held_from or time.time()
        step = burst(state, self.p.policy) or 1
        for index, recipient in enumerate(self._take_all()):
            at = start + (index // step) * (step / state.rate) if state.rate else start
            self.answers[recipient] = Answer(
                Evidence.TEMPORARY,
                self.target.host,
                reason=f"held back: {self.target.host} is paced by its limits",
                retry_at=at,
                held=True,
            )
            self.p.stats.held_back += 1


@dataclass
class _Ended:
    """What ended one transaction, as its gate saw it, and when each answer came."""

    block: bool = False  # two policy refusals in a row, nothing accepted on the connection
    full: bool = False  # the connection did its share of refusals or recipients
    answered_at: list[float] = field(default_factory=list)  # per recorded answer, in order


def _gate(
    use: _Use, state: MxLimitState, policy: LimitPolicy, answered: Callable[[], None]
) -> tuple[RcptGate, _Ended]:
    """The RCPT gate of one transaction, and what ended it. ``answered`` is told of each
    answer as it comes (the rate measured when a limit comes)."""
    ended = _Ended()
    streak = 0

    def gate(reply: Reply) -> RcptAction:
        nonlocal streak
        if recipients_limit(reply) or (
            rate_candidate(reply) and (use.definitive > 0 or state.rate_limited)
        ):
            return "limit"
        ended.answered_at.append(time.time())
        use.answered += 1
        answered()
        use.rejected += reply.code >= 400
        use.definitive += not 400 <= reply.code < 500
        use.accepted += 200 <= reply.code < 300
        streak = streak + 1 if rcpt_block(reply) else 0
        if streak >= 2 and use.accepted == 0:
            ended.block = True
            return "last"
        if use.rejected >= policy.max_rejected or (
            state.rcpt_cap is not None and use.answered >= state.rcpt_cap
        ):
            ended.full = True
            return "last"
        return "continue"

    return gate, ended
