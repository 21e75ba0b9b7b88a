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

Publishable keys (``apx_pub_...``, recognised by their prefix: no lookup) are public, written
into web pages, so anyone can send them: each such request spends a token of the client
address's publishable bucket, then one of the key's, both smaller than a secret key's
(``APEXVERIFY_PUBLISHABLE_RATE_LIMIT_*``; ``docs/browser.md``). The address's comes first, so
one address over its limit spends nothing of the key's that the form's other visitors share.
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

from ..accounts.keys import looks_publishable
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


def _left(decision: Decision) -> int:
    return decision.remaining


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


@dataclass(frozen=True)
class Shape:
    """A bucket's size: ``capacity`` tokens at once, ``refill_per_second`` back."""

    capacity: int
    refill_per_second: float

    def rates(self) -> list[Rate]:
        return [_rate(self.capacity, self.refill_per_second)]


@dataclass(frozen=True)
class _Bucket:
    capacity: int
    rates: list[Rate]

    @classmethod
    def of(cls, shape: Shape) -> _Bucket:
        return cls(shape.capacity, shape.rates())


def publishable_shapes(settings: Settings) -> tuple[Shape, Shape]:
    """(per publishable key, per client address for publishable keys)."""
    return (
        Shape(
            settings.publishable_rate_limit_capacity,
            settings.publishable_rate_limit_refill_per_second,
        ),
        Shape(
            settings.publishable_rate_limit_per_ip_capacity,
            settings.publishable_rate_limit_per_ip_refill_per_second,
        ),
    )


class RateLimiter:
    def __init__(
        self,
        capacity: int,
        refill_per_second: float,
        redis_url: str = "",
        clock: Clock | None = None,
        publishable: tuple[Shape, Shape] | None = None,
    ) -> None:
        """``publishable``: the buckets of publishable keys (per key, per address); without
        it they are limited as any key."""
        self.capacity = capacity
        self.rates = [_rate(capacity, refill_per_second)]
        self._default = _Bucket(capacity, self.rates)
        self._publishable = (
            (_Bucket.of(publishable[0]), _Bucket.of(publishable[1])) if publishable else None
        )
        self.algorithm = TokenBucket()
        self.clock: Clock = clock or (time.time if redis_url else time.monotonic)
        self._redis: Any = None
        if redis_url:
            import redis.asyncio as redis

            # Blocking: a burst of concurrent requests waits for a pooled connection instead
            # of failing with "Too many connections" (the plain pool's answer past 100).
            pool = redis.BlockingConnectionPool.from_url(redis_url, max_connections=64, timeout=5)
            self._redis = redis.Redis(connection_pool=pool)
        # Each memory bucket with its shape: the sweep must measure it with its own rates.
        self._memory: dict[str, tuple[StateStore, _Bucket]] = {}
        self._next_sweep = _MIN_SWEEP_SIZE

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        capacity, refill = bucket_shape(settings)
        return cls(capacity, refill, settings.redis_url, publishable=publishable_shapes(settings))

    async def hit(self, api_key: str | None, client_ip: str) -> Decision:
        """Spend one token of the caller's bucket, or say how long until there is one."""
        now_ms = int(self.clock() * 1000)
        if api_key and self._publishable is not None and looks_publishable(api_key):
            per_key, per_address = self._publishable
            by_address = await self._spend(f"pubip:{client_ip}", per_address, now_ms)
            if not by_address.allowed:
                return by_address
            by_key = await self._spend(_ident(api_key, client_ip), per_key, now_ms)
            # The headers report the bucket that runs out first.
            return by_key if not by_key.allowed else min(by_key, by_address, key=_left)
        return await self._spend(_ident(api_key, client_ip), self._default, now_ms)

    async def _spend(self, ident: str, bucket: _Bucket, now_ms: int) -> Decision:
        store = self._store(ident, bucket, now_ms)
        verdict = await _settled(store.check(self.algorithm, bucket.rates, now_ms, 1))
        if not verdict.allowed:
            # Rounded up, and at least 1: a client that waits this long finds a token.
            wait_ms = verdict.retry_after_ms or 1000
            return Decision(False, bucket.capacity, 0, max(1, math.ceil(wait_ms / 1000)))
        return Decision(True, bucket.capacity, await self._remaining(store, bucket, now_ms), 0)

    async def _remaining(self, store: StateStore, bucket: _Bucket, now_ms: int) -> int:
        # A report, not a decision: a second read, so it may already count a concurrent
        # request of the same key. Whole tokens only: what can be spent right now.
        state = await _settled(store.read(self.algorithm, bucket.rates))
        return max(0, bucket.capacity - self.algorithm.consumed(bucket.rates, state, now_ms))

    def _store(self, ident: str, bucket: _Bucket, now_ms: int) -> StateStore:
        if self._redis is not None:
            return RedisStateStore(self._redis, _REDIS_PREFIX + ident)
        kept = self._memory.get(ident)
        if kept is None:
            if len(self._memory) >= self._next_sweep:
                self._sweep(now_ms)
            kept = self._memory[ident] = (InMemoryStateStore(), bucket)
        return kept[0]

    def _sweep(self, now_ms: int) -> None:
        full = [
            ident
            for ident, (store, bucket) in self._memory.items()
            if self._consumed(store, bucket, now_ms) == 0
        ]
        for ident in full:
            del self._memory[ident]
        self._next_sweep = max(_MIN_SWEEP_SIZE, 2 * len(self._memory))

    def _consumed(self, store: StateStore, bucket: _Bucket, now_ms: int) -> int:
        state = cast(State, store.read(self.algorithm, bucket.rates))  # in memory: no awaitable
        return self.algorithm.consumed(bucket.rates, state, now_ms)

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose(close_connection_pool=True)
