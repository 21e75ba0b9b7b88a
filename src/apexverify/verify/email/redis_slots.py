"""Per-MX SMTP connection limits shared by every worker, in Redis.

The email engine takes a slot per MX address around each SMTP connection (``slots.py``:
``MxSlots.acquire``); :class:`~apexverify.verify.registry.EngineFactory` plugs this
implementation in when ``APEXVERIFY_REDIS_URL`` is set. In-process semaphores cap one worker;
with M workers the remote MX would see M times the cap. Here a slot is a lease in a Redis sorted
set per MX (member = random token, score = expiry time): a Lua script drops expired leases
and admits a new one only below the cap, atomically. Leases are renewed while held, so a
worker killed with ``kill -9`` loses its slots after ``lease_seconds`` at most, never forever.
The cap of one acquisition is the lower of the configured one and the ``limit`` the engine
learnt for that MX (``limits.py``), so a worker that saw a ``421`` lowers it for every worker
(the learned limit itself is shared through :class:`RedisSharedState`).

:class:`RedisSharedState` is the scale-out :class:`~.limits.SharedState`: the learned per-MX
limits and the breakers, one JSON value per key, changed with ``WATCH``/``MULTI`` (optimistic:
a concurrent write makes the change run again on the new value). It uses the slots' client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

import redis.asyncio as redis
from redis.exceptions import WatchError

from .limits import Change, JsonValue

T = TypeVar("T")

_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0
"""


class RedisMxSlots:
    """At most ``per_mx`` simultaneous connections per MX key across all processes."""

    def __init__(
        self,
        redis_url: str,
        per_mx: int,
        *,
        lease_seconds: float = 60.0,
        prefix: str = "apexverify:mx:",
    ) -> None:
        self._client = redis.Redis.from_url(redis_url)
        self._per_mx = max(1, per_mx)
        self._lease = lease_seconds
        self._prefix = prefix
        self._acquire_script = self._client.register_script(_ACQUIRE)

    @property
    def shared_state(self) -> RedisSharedState:
        """The learned limits and breakers, on the same Redis client."""
        return RedisSharedState(self._client)

    async def _try(self, key: str, token: str, cap: int | None = None) -> bool:
        now = time.time()
        cap = self._per_mx if cap is None else cap
        admitted = await self._acquire_script(
            keys=[key],
            args=[now, cap, now + self._lease, token, int(self._lease * 2) + 1],
        )
        return bool(admitted)

    async def _renew(self, key: str, token: str) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            await self._client.zadd(key, {token: time.time() + self._lease}, xx=True)

    @asynccontextmanager
    async def acquire(self, mx_key: str, limit: int | None = None) -> AsyncIterator[None]:
        key = self._prefix + mx_key
        token = secrets.token_hex(8)
        cap = max(1, min(self._per_mx, limit or self._per_mx))
        wait = 0.02
        while not await self._try(key, token, cap):
            await asyncio.sleep(wait)
            wait = min(wait * 2, 0.5)
        renewer = asyncio.create_task(self._renew(key, token))
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            await self._client.zrem(key, token)

    async def aclose(self) -> None:
        await self._client.aclose()


class RedisSharedState:
    """:class:`~.limits.SharedState` in Redis: one JSON string per key, with a TTL."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    async def read(self, key: str) -> JsonValue | None:
        raw = await self._client.get(key)
        return _decode(raw)

    async def update(self, key: str, change: Change[T], ttl: float) -> T:
        async with self._client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    new, result = change(_decode(await pipe.get(key)))
                    if new is None:
                        await pipe.unwatch()  # type: ignore[no-untyped-call]
                        return result
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, json.dumps(new), px=max(1, int(ttl * 1000)))
                    await pipe.execute()
                    return result
                except WatchError:
                    continue  # another worker wrote meanwhile: apply the change to its value


def _decode(raw: bytes | str | None) -> JsonValue | None:
    if raw is None:
        return None
    value = json.loads(raw)
    return value if isinstance(value, dict) else None
