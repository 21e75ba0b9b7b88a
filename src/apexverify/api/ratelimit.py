"""Per-key rate limiting with the ``limits`` library's async API.

Memory storage by default; Redis when ``APEXVERIFY_REDIS_URL`` is set, so the limit is shared by
every API process. The moving-window strategy gives the token-bucket-like behaviour the public
docs describe: at most N requests in any 60-second window.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after: int

    @property
    def used(self) -> int:
        return self.limit - self.remaining

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Used": str(self.used),
        }


def _storage(redis_url: str) -> Storage:
    if not redis_url:
        return MemoryStorage()
    url = redis_url
    if url.startswith(("redis://", "rediss://")):
        url = "async+" + url
    storage = storage_from_string(url, implementation="redispy")
    assert isinstance(storage, Storage)  # an "async+" URL gives the async storage
    return storage


class RateLimiter:
    def __init__(self, per_minute: int, redis_url: str = "") -> None:
        self.item = RateLimitItemPerMinute(per_minute)
        self.limiter = MovingWindowRateLimiter(_storage(redis_url))

    async def hit(self, api_key: str | None, client_ip: str) -> Decision:
        # Keys are identified by a hash: the limiter's storage never sees a secret.
        ident = (
            "key:" + hashlib.sha256(api_key.encode("utf-8", "replace")).hexdigest()[:32]
            if api_key
            else f"ip:{client_ip}"
        )
        allowed = await self.limiter.hit(self.item, "apexverify", ident)
        stats = await self.limiter.get_window_stats(self.item, "apexverify", ident)
        retry_after = 0 if allowed else max(1, math.ceil(stats.reset_time - time.time()))
        return Decision(allowed, self.item.amount, max(stats.remaining, 0), retry_after)
