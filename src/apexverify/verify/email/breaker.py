"""Circuit breakers on blocks: an MX (or a provider) that refused us by policy is left alone.

A ``554`` banner or a ``5.7.x`` refusal at the greeting, EHLO/HELO or MAIL, or two ``5.7.x``
RCPT refusals in a row (``replies.session_block`` / ``rcpt_block``) say the server refuses
*us*: our IP, our HELO name or our sender. Probing on only digs the hole deeper (block lists
count attempts) and tells nothing about the mailboxes. So the engine opens a breaker for that
MX host name, and for its provider when ``providers.json`` knows the MX (a block by Google's
reputation system applies to every Google MX), for ``APEXVERIFY_SMTP_BREAKER_SECONDS``.
While it is open, no connection is made there and the addresses end ``unknown`` with the
evidence ``blocked`` (docs/results.md). The breaker closes by itself when its time is up; the
next probe tries again.

Breakers live in the same :class:`~.limits.SharedState` as the learned limits, so every
worker of a scale-out deployment stops at once. The process that opened one logs one WARNING
line then and one INFO line when it closes; :meth:`Breakers.check` is the ``smtp_blocks``
health check (a warning for operators: it never takes the process out of service).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..base import HealthCheck
from .limits import JsonValue, SharedState

log = logging.getLogger(__name__)

BLOCKS_CHECK = "smtp_blocks"
_PREFIX = "apexverify:breaker:"
# Blocks listed by name in the health check's details (the count covers them all).
_LISTED = 20


def mx_key(host: str) -> str:
    return f"mx:{host.lower().rstrip('.')}"


def provider_key(name: str) -> str:
    return f"provider:{name}"


@dataclass(frozen=True)
class Breaker:
    key: str  # "mx:<host>" or "provider:<name>"
    opened_at: float  # epoch seconds
    until: float
    reason: str  # the refusing reply and where it came

    def to_json(self) -> JsonValue:
        return {"opened_at": self.opened_at, "until": self.until, "reason": self.reason}

    @classmethod
    def from_json(cls, key: str, value: JsonValue) -> Breaker:
        return cls(key, float(value["opened_at"]), float(value["until"]), str(value["reason"]))


class Breakers:
    """The open breakers, shared through ``store``; ``seconds`` is how long one stays open."""

    def __init__(
        self, store: SharedState, seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.seconds = seconds
        self._clock = clock
        self._known: dict[str, Breaker] = {}  # breakers this process opened or met
        self._mine: set[str] = set()  # opened here: this process logs their end
        self._lock = threading.Lock()  # check() runs in the metrics thread too

    async def open_for(self, keys: Sequence[str]) -> Breaker | None:
        """The open breaker among ``keys`` (the MX, its provider), or None."""
        now = self._clock()
        for key in keys:
            value = await self.store.read(_PREFIX + key)
            if value is None:
                continue
            breaker = Breaker.from_json(key, value)
            if breaker.until > now:
                self._remember(breaker)
                return breaker
        self._expire(now)
        return None

    async def trip(self, keys: Sequence[str], reason: str) -> None:
        """Open a breaker for each of ``keys`` that is not open yet."""
        now = self._clock()
        fresh = Breaker("", now, now + self.seconds, reason)

        def open_unless_open(value: JsonValue | None) -> tuple[JsonValue | None, bool]:
            if value is not None and float(value["until"]) > now:
                return None, False  # another worker (or chunk) opened it first
            return fresh.to_json(), True

        for key in keys:
            opened = await self.store.update(_PREFIX + key, open_unless_open, self.seconds)
            if not opened:
                continue
            breaker = Breaker(key, fresh.opened_at, fresh.until, reason)
            self._remember(breaker, mine=True)
            log.warning(
                "SMTP breaker open for %s until %s UTC: %s; its addresses end unknown "
                "(blocked) instead of being probed (APEXVERIFY_SMTP_BREAKER_SECONDS=%.0f)",
                key,
                time.strftime("%H:%M:%S", time.gmtime(breaker.until)),
                reason,
                self.seconds,
            )
            self._log_close_later(breaker)

    def check(self) -> HealthCheck:
        """``smtp_blocks``: failing (as a warning, not for readiness) while a breaker is
        open; no I/O (the breakers this process opened or met)."""
        now = self._clock()
        self._expire(now)
        with self._lock:
            open_now = sorted(self._known.values(), key=lambda b: b.until)
        details: dict[str, object] = {
            "open_breakers": len(open_now),
            "breakers": [
                {"key": b.key, "seconds_left": round(b.until - now), "reason": b.reason}
                for b in open_now[:_LISTED]
            ],
        }
        if not open_now:
            return HealthCheck(BLOCKS_CHECK, True, "no MX blocks us", details, False)
        names = ", ".join(b.key for b in open_now[:3]) + (", ..." if len(open_now) > 3 else "")
        reason = f"{len(open_now)} SMTP breaker(s) open after a block: {names}"
        return HealthCheck(BLOCKS_CHECK, False, reason, details, False)

    def _remember(self, breaker: Breaker, *, mine: bool = False) -> None:
        with self._lock:
            self._known[breaker.key] = breaker
            if mine:
                self._mine.add(breaker.key)

    def _expire(self, now: float) -> None:
        with self._lock:
            ended = [b for b in self._known.values() if b.until <= now]
            for breaker in ended:
                del self._known[breaker.key]
                if breaker.key in self._mine:
                    self._mine.discard(breaker.key)
                    log.info("SMTP breaker closed for %s: it will be probed again", breaker.key)

    def _log_close_later(self, breaker: Breaker) -> None:
        # The INFO line when the time is up, not whenever the next health check happens to
        # run (the loop may be gone by then: the next check logs it instead).
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        delay = max(0.0, breaker.until - self._clock())
        loop.call_later(delay + 0.01, lambda: self._expire(self._clock()))
