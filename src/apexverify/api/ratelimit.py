"""Per-key rate limiting: a token bucket per API key (per client address without a key).

The hosted API documents "180 requests per minute, token-bucket style": a key holds up to
``capacity`` tokens, each request spends one, and tokens come back continuously at
``refill_per_second``. So a client over the limit waits seconds, not the rest of a minute
(n8n's "Retry On Fail" retries 3 times, 1 s apart).

The bucket is pyrate-limiter's ``TokenBucket`` (GCRA: one timestamp per key, the wait in
closed form). Its Redis store applies a request atomically in one Lua script, so the bucket
is shared by every API process when ``APEXVERIFY_REDIS_URL`` is set; otherwise each process
keeps its buckets in memory. The stores are used directly (``check``/``read``) rather than
through ``StateBucket``, whose last verdict is kept on the bucket object and would be mixed up
by two concurrent requests of one key.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, TypeVar, cast

from pyrate_limiter import InMemoryStateStore, Rate, RedisStateStore, StateStore, TokenBucket
from pyrate_limiter.abstracts.algorithm import State

from ..settings import Settings

# Seconds since some origin. Memory buckets use a monotonic clock; shared ones the wall clock,
# the only one that means the same in every process. Tests pass their own.
Clock = Callable[[], float]

_REDIS_PREFIX = "apexverify:ratelimit:"
# Memory buckets: idle ones (full again, so equal to a new one) are dropped once the map has
# doubled since the last sweep, so sweeping costs O(1) per request on average.
_MIN_SWEEP_SIZE = 1024

T = TypeVar("T")


async def _settled(value: T | Awaitable[T]) -> T:
    # pyrate's stores answer in kind: awaitables over an async Redis client, values in memory.
    if inspect.isawaitable(value):
        return cast(T, await value)
    return value


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after: int  # whole seconds until the next token; 0 when allowed

    @property
    def used(self) -> int:
        return self.limit - self.remaining

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Used": str(self.used),
        }


def bucket_shape(settings: Settings) -> tuple[int, float]:
    """(capacity, refill per second): ``RATE_LIMIT_CAPACITY`` / ``_REFILL_PER_SECOND``, each
    defaulting (when 0) to what ``RATE_LIMIT_PER_MINUTE`` means: that many at once, and that
    many per minute sustained."""
    capacity = settings.rate_limit_capacity or settings.rate_limit_per_minute
    refill = settings.rate_limit_refill_per_second or settings.rate_limit_per_minute / 60
    return capacity, refill


def _rate(capacity: int, refill_per_second: float) -> Rate:
    # pyrate's Rate is "limit per interval (integer ms)": 3/s is Rate(3, 1000), 5/min is
    # Rate(1, 12000). A fraction keeps any refill exact to a thousandth of a token.
    per_ms = Fraction(refill_per_second).limit_denominator(1_000_000) / 1000
    return Rate(per_ms.numerator, per_ms.denominator, burst=capacity)


def _ident(api_key: str | None, client_ip: str) -> str:
    # Keys are identified by a hash: the limiter's storage never sees a secret.
    if api_key:
        return "key:" + hashlib.sha256(api_key.encode("utf-8", "replace")).hexdigest()[:32]
    return f"ip:{client_ip}"


class RateLimiter:
    def __init__(
        self,
        capacity: int,
        refill_per_second: float,
        redis_url: str = "",
        clock: Clock | None = None,
    ) -> None:
        self.capacity = capacity
        self.rates = [_rate(capacity, refill_per_second)]
        self.algorithm = TokenBucket()
        self.clock: Clock = clock or (time.time if redis_url else time.monotonic)
        self._redis: Any = None
        if redis_url:
            import redis.asyncio as redis

            # Blocking: a burst of concurrent requests waits for a pooled connection instead
            # of failing with "Too many connections" (the plain pool's answer past 100).
            pool = redis.BlockingConnectionPool.from_url(redis_url, max_connections=64, timeout=5)
            self._redis = redis.Redis(connection_pool=pool)
        self._memory: dict[str, StateStore] = {}
        self._next_sweep = _MIN_SWEEP_SIZE

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        capacity, refill = bucket_shape(settings)
        return cls(capacity, refill, settings.redis_url)

    async def hit(self, api_key: str | None, client_ip: str) -> Decision:
        """Spend one token of the caller's bucket, or say how long until there is one."""
        now_ms = int(self.clock() * 1000)
        store = self._store(_ident(api_key, client_ip), now_ms)
        verdict = await _settled(store.check(self.algorithm, self.rates, now_ms, 1))
        if not verdict.allowed:
            # Rounded up, and at least 1: a client that waits this long finds a token.
            wait_ms = verdict.retry_after_ms or 1000
            return Decision(False, self.capacity, 0, max(1, math.ceil(wait_ms / 1000)))
        return Decision(True, self.capacity, await self._remaining(store, now_ms), 0)

    async def _remaining(self, store: StateStore, now_ms: int) -> int:
        # A report, not a decision: a second read, so it may already count a concurrent
        # request of the same key. Whole tokens only: what can be spent right now.
        state = await _settled(store.read(self.algorithm, self.rates))
        return max(0, self.capacity - self.algorithm.consumed(self.rates, state, now_ms))

    def _store(self, ident: str, now_ms: int) -> StateStore:
        if self._redis is not None:
            return RedisStateStore(self._redis, _REDIS_PREFIX + ident)
        store = self._memory.get(ident)
        if store is None:
            if len(self._memory) >= self._next_sweep:
                self._sweep(now_ms)
            store = self._memory[ident] = InMemoryStateStore()
        return store

    def _sweep(self, now_ms: int) -> None:
        full = [
            ident
            for ident, store in self._memory.items()
            if self.algorithm.consumed(self.rates, self._memory_state(store), now_ms) == 0
        ]
        for ident in full:
            del self._memory[ident]
        self._next_sweep = max(_MIN_SWEEP_SIZE, 2 * len(self._memory))

    def _memory_state(self, store: StateStore) -> State:
        return cast(State, store.read(self.algorithm, self.rates))  # in memory: no awaitable

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose(close_connection_pool=True)
