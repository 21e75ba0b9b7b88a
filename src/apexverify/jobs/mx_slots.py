"""Per-MX SMTP connection limits shared by every worker, in Redis.

The email engine takes a slot per MX address around each SMTP connection
(``verify/email/slots.py``: ``MxSlots.acquire``). In-process semaphores cap one worker; with
M workers the remote MX would see M times the cap. Here a slot is a lease in a Redis sorted
set per MX (member = random token, score = expiry time): a Lua script drops expired leases
and admits a new one only below the cap, atomically. Leases are renewed while held, so a
worker killed with ``kill -9`` loses its slots after ``lease_seconds`` at most, never forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import redis.asyncio as redis

from ..settings import Settings
from ..verify import registry
from ..verify.base import Verifier

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


def build_verifier(
    record_type: str,
    settings: Settings,
    *,
    sandbox: bool,
    on_smtp_reply: Callable[[str, int], None] | None = None,
) -> Verifier:
    """The registry's engine, except that real email verification in a scaled-out worker with
    Redis configured shares its per-MX caps with every other worker."""
    if sandbox or record_type != "email" or not settings.redis_url:
        return registry.build_verifier(
            record_type,  # type: ignore[arg-type]
            settings,
            sandbox=sandbox,
            on_smtp_reply=on_smtp_reply,
        )
    from ..verify.email.engine import EmailVerifier
    from ..verify.email.smtp import ignore_reply

    key = (settings.redis_url, settings.smtp_max_connections_per_mx)
    slots = _shared.get(key)
    if slots is None:  # one client (and connection pool) per worker process, not per chunk
        slots = _shared[key] = RedisMxSlots(*key)
    return EmailVerifier(settings, mx_slots=slots, on_reply=on_smtp_reply or ignore_reply)


_shared: dict[tuple[str, int], RedisMxSlots] = {}
