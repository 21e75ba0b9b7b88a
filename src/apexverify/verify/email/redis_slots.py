"""Per-MX SMTP connection limits shared by every worker, in Redis.

The email engine takes a slot per MX address around each SMTP connection (``slots.py``:
``MxSlots.acquire``); :class:`~apexverify.verify.registry.EngineFactory` plugs this
implementation in when ``APEXVERIFY_REDIS_URL`` is set. In-process semaphores cap one worker;
with M workers the remote MX would see M times the cap. Here a slot is a lease in a Redis sorted
set per MX (member = random token, score = expiry time): a Lua script drops expired leases
and admits a new one only below the cap, atomically. Leases are renewed while held, so a
worker killed with ``kill -9`` loses its slots after ``lease_seconds`` at most, never forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as redis

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

    async def _try(self, key: str, token: str) -> bool:
        now = time.time()
        admitted = await self._acquire_script(
            keys=[key],
            args=[now, self._per_mx, now + self._lease, token, int(self._lease * 2) + 1],
        )
        return bool(admitted)

    async def _renew(self, key: str, token: str) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            await self._client.zadd(key, {token: time.time() + self._lease}, xx=True)

    @asynccontextmanager
    async def acquire(self, mx_key: str) -> AsyncIterator[None]:
        key = self._prefix + mx_key
        token = secrets.token_hex(8)
        wait = 0.02
        while not await self._try(key, token):
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
