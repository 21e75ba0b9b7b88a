"""Per-MX limits learned from replies, and the small store that shares them between workers.

A mail server tells us its limits only by refusing: ``452 4.5.3`` (too many recipients on
this connection), ``450 4.7.1`` after a run of answers (too many recipients per minute), a
``421`` greeting (too many connections). :class:`MxLimitState` is what we learnt about one
MX address; the functions below change it, AIMD style (docs/politeness.md, "Limits learned
from replies"):

* a limit decreases at once: the recipients per connection become what the server took on
  the connection that hit it, the recipient rate halves (from what we sent in the last
  window) with a cool-down before the next RCPT, the concurrency becomes the connections we
  had open (at least one) and new connections are spaced so that a window sees half as
  many as it took; a limit met by several connections in flight decreases once;
* success increases slowly: one more recipient per connection after
  ``cap_increase_after`` clean connections at the cap, one more recipient per window for
  each window without a rate limit, one more connection (and a halved spacing) after
  ``concurrency_increase_windows`` windows without a connection limit.

The state lives in a :class:`SharedState` (a key -> JSON value store with read-modify-write):
:class:`LocalSharedState` in this process (the embedded mode), ``RedisSharedState``
(``redis_slots.py``) across every worker in scale-out mode. Times are epoch seconds, so
workers on several machines agree. Learned values are forgotten after ``ttl`` without news:
they belong to a batch's stretch of work, not to the MX forever.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
JsonValue = dict[str, Any]
# A change of one stored value: the new value (None: leave it as it is) and a result.
Change = Callable[[JsonValue | None], tuple[JsonValue | None, T]]


class SharedState(Protocol):
    """A key -> JSON object store with atomic read-modify-write, shared by whoever must
    agree on it (the workers probing the same MX)."""

    async def read(self, key: str) -> JsonValue | None: ...

    async def update(self, key: str, change: Change[T], ttl: float) -> T:
        """Apply ``change`` to the current value atomically (retried on a concurrent
        write); a new value expires ``ttl`` seconds after it was written."""
        ...


class LocalSharedState:
    """:class:`SharedState` within this process (asyncio code runs ``change`` without any
    await in between, so a plain dict is atomic enough)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._values: dict[str, tuple[float, JsonValue]] = {}
        self._clock = clock

    async def read(self, key: str) -> JsonValue | None:
        return self._current(key)

    async def update(self, key: str, change: Change[T], ttl: float) -> T:
        new, result = change(self._current(key))
        if new is not None:
            self._values[key] = (self._clock() + ttl, new)
            if len(self._values) > 10_000:
                self._sweep()
        return result

    def _current(self, key: str) -> JsonValue | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._values[key]
            return None
        return entry[1]

    def _sweep(self) -> None:
        now = self._clock()
        for key in [k for k, (expires, _) in self._values.items() if expires <= now]:
            del self._values[key]


@dataclass(frozen=True)
class LimitPolicy:
    """How fast limits are learnt and forgotten (docs/politeness.md)."""

    window: float = 60.0  # the unit servers count rates over (Postfix anvil: 60 s)
    max_rejected: int = 8  # refused RCPTs per connection (Postfix slows down after 10)
    decrease: float = 0.5  # multiplicative decrease
    max_backoff_windows: float = 16.0  # a cool-down doubles on repeats, up to this
    cap_increase_after: int = 20  # clean connections at the cap before it grows by one
    concurrency_increase_windows: float = 10.0  # windows without a 421 before +1 connection
    pace_wait: float = 5.0  # the longest wait for a paced MX inside one verify_many call
    ttl: float = 3600.0  # learned state is forgotten after this long without news

    @property
    def min_rate(self) -> float:
        return 1.0 / self.window  # at least one recipient per window


@dataclass(frozen=True)
class MxLimitState:
    """What we learnt about one MX address (all times epoch seconds)."""

    rcpt_cap: int | None = None  # recipients per connection (None: not limited)
    cap_clean: int = 0  # clean connections at the cap since the cap last changed
    rate: float | None = None  # recipients per second (None: not limited)
    rate_changed_at: float = 0.0
    rcpt_paused_until: float = 0.0  # no RCPT before (cool-down after a rate limit)
    rcpt_backoff: float = 0.0  # the last cool-down (0: none yet)
    next_rcpt_at: float = 0.0  # pacing under ``rate`` (the next free slot)
    concurrency: int | None = None  # simultaneous connections (None: the configured cap)
    concurrency_changed_at: float = 0.0
    connect_gap: float = 0.0  # seconds between two new connections (0: no spacing)
    next_connect_at: float = 0.0
    connect_backoff: float = 0.0

    def to_json(self) -> JsonValue:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, value: JsonValue | None) -> MxLimitState:
        if not value:
            return cls()
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in value.items() if k in names})

    @property
    def rate_limited(self) -> bool:
        return self.rate is not None


def _backoff(previous: float, paused_until: float, now: float, policy: LimitPolicy) -> float:
    """The next cool-down: one window, doubled when the last one ended less than a window
    ago (the limit is still there), at most ``max_backoff_windows`` windows."""
    if previous and now < paused_until + policy.window:
        return min(previous * 2, policy.window * policy.max_backoff_windows)
    return policy.window


def recipients_limited(state: MxLimitState, answered: int, now: float) -> MxLimitState | None:
    """The server refused more recipients after ``answered`` on one connection: that is
    what it takes, exactly (a count limit is no estimate). Refused with nothing answered: a
    learned cap halves, no cap is learnt from nothing (None: unchanged)."""
    if answered > 0:
        cap = answered if state.rcpt_cap is None else min(answered, state.rcpt_cap)
    elif state.rcpt_cap is not None:
        cap = state.rcpt_cap // 2
    else:
        return None
    return dataclasses.replace(state, rcpt_cap=max(1, cap), cap_clean=0)


def rate_limited(
    state: MxLimitState, measured: int, now: float, policy: LimitPolicy
) -> MxLimitState:
    """A rate limit after ``measured`` recipients answered in the last window: half that
    rate (or half the current one, if lower), and a cool-down before the next RCPT. A limit
    reported while the cool-down of the last one runs is the same limit met by another
    connection (or worker) in flight: it changes nothing (one decrease per limit)."""
    if now < state.rcpt_paused_until:
        return state
    base = measured / policy.window
    if state.rate is not None:
        base = min(base, state.rate)
    rate = max(policy.min_rate, base * policy.decrease)
    backoff = _backoff(state.rcpt_backoff, state.rcpt_paused_until, now, policy)
    paused = max(state.rcpt_paused_until, now + backoff)
    return dataclasses.replace(
        state,
        rate=rate,
        rate_changed_at=now,
        rcpt_paused_until=paused,
        rcpt_backoff=backoff,
        next_rcpt_at=max(state.next_rcpt_at, paused),
    )


def connections_limited(
    state: MxLimitState,
    open_now: int,
    current: int,
    opened: int,
    now: float,
    policy: LimitPolicy,
) -> MxLimitState:
    """A ``421`` at connect while ``open_now`` of our connections to the MX were open
    (``current``: the concurrency allowed) after we opened ``opened`` in the last window: no
    more connections at once than those open (at least one; halved when none was open), and
    new ones spaced so that a window sees half as many as it took (at least one per window,
    a little over a window apart), after a cool-down. Refusals during that cool-down are
    the same limit met by connections in flight: unchanged."""
    if now < state.next_connect_at and state.connect_gap:
        return state
    target = open_now if open_now > 0 else math.floor(current * policy.decrease)
    allowed = max(1, math.floor(opened * policy.decrease))
    # A little over a window: the server's window starts when it sees a connection, a hair
    # after we opened it.
    gap = policy.window * 1.1 / allowed
    backoff = _backoff(state.connect_backoff, state.next_connect_at, now, policy)
    return dataclasses.replace(
        state,
        concurrency=max(1, min(current, target)),
        concurrency_changed_at=now,
        connect_gap=max(state.connect_gap, gap),
        next_connect_at=max(state.next_connect_at, now + backoff),
        connect_backoff=backoff,
    )


def connected(
    state: MxLimitState, now: float, configured: int, policy: LimitPolicy
) -> MxLimitState | None:
    """A greeting: slowly give back what a connection limit took (None: nothing changes)."""
    quiet = policy.window * policy.concurrency_increase_windows
    if (state.concurrency is None and not state.connect_gap) or (
        now - state.concurrency_changed_at < quiet
    ):
        return None
    concurrency = None if state.concurrency is None else state.concurrency + 1
    if concurrency is not None and concurrency >= configured:
        concurrency = None
    gap = state.connect_gap * policy.decrease
    return dataclasses.replace(
        state,
        concurrency=concurrency,
        concurrency_changed_at=now,
        connect_gap=gap if gap >= policy.window / 8 else 0.0,
        connect_backoff=0.0,
    )


def session_clean(
    state: MxLimitState, answered: int, now: float, policy: LimitPolicy
) -> MxLimitState | None:
    """A connection or transaction that ended without a limit (``answered`` recipients on
    it): additive increase of the cap and the rate (None: nothing changes)."""
    changed = state
    if state.rcpt_cap is not None and answered >= state.rcpt_cap:
        clean = state.cap_clean + 1
        if clean >= policy.cap_increase_after:
            changed = dataclasses.replace(changed, rcpt_cap=state.rcpt_cap + 1, cap_clean=0)
        else:
            changed = dataclasses.replace(changed, cap_clean=clean)
    if state.rate is not None and now - state.rate_changed_at >= policy.window:
        changed = dataclasses.replace(
            changed, rate=state.rate + 1.0 / policy.window, rate_changed_at=now
        )
    return None if changed is state else changed


def burst(state: MxLimitState, policy: LimitPolicy) -> int | None:
    """Recipients one transaction may carry under the learned rate (None: no rate): a
    quarter window's worth, so that a fixed-window counter never sees more than 1.25 times
    the rate (already half of what was refused)."""
    if state.rate is None:
        return None
    return max(1, math.floor(state.rate * policy.window / 4))


def reserve_rcpts(
    state: MxLimitState, count: int, now: float, deadline: float
) -> tuple[MxLimitState | None, float]:
    """Book ``count`` recipients under the pacing: (new state or None, when they may go).
    Nothing is booked when that time is after ``deadline`` (the caller defers instead)."""
    start = max(now, state.rcpt_paused_until)
    if state.rate is None:
        return None, start
    start = max(start, state.next_rcpt_at)
    if start > deadline:
        return None, start
    return dataclasses.replace(state, next_rcpt_at=start + count / state.rate), start


def reserve_connect(
    state: MxLimitState, now: float, deadline: float
) -> tuple[MxLimitState | None, float]:
    """Book one new connection under the spacing: (new state or None, when it may open)."""
    start = max(now, state.next_connect_at)
    if start > deadline or not state.connect_gap:
        return None, start
    return dataclasses.replace(state, next_connect_at=start + state.connect_gap), start


class MxLimits:
    """The learned limits of every MX address, in a :class:`SharedState`."""

    def __init__(
        self, store: SharedState, policy: LimitPolicy, prefix: str = "apexverify:limits:"
    ) -> None:
        self.store = store
        self.policy = policy
        self._prefix = prefix

    async def get(self, mx_key: str) -> MxLimitState:
        return MxLimitState.from_json(await self.store.read(self._prefix + mx_key))

    async def change(
        self, mx_key: str, step: Callable[[MxLimitState], tuple[MxLimitState | None, T]]
    ) -> tuple[MxLimitState, T]:
        """Apply ``step`` (new state or None, result) atomically; returns the state after it
        and the result."""

        def apply(value: JsonValue | None) -> tuple[JsonValue | None, tuple[MxLimitState, T]]:
            state = MxLimitState.from_json(value)
            new, result = step(state)
            if new is None:
                return None, (state, result)
            return new.to_json(), (new, result)

        return await self.store.update(self._prefix + mx_key, apply, self.policy.ttl)

    async def apply(
        self, mx_key: str, step: Callable[[MxLimitState], MxLimitState | None]
    ) -> MxLimitState:
        state, _ = await self.change(mx_key, lambda s: (step(s), None))
        return state
