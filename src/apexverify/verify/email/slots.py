"""Connection limits: a global cap and a per-MX cap behind a small interface.

:class:`MxSlots` is what the engine needs; :class:`LocalMxSlots` counts slots in this
process. A scale-out deployment (several workers probing the same MX) plugs the Redis
implementation (``redis_slots.py``) with the same ``acquire`` context manager.

``acquire(mx_key, limit)``: the engine passes the concurrency it learnt for that MX (a
``421`` at connect lowers it, ``limits.py``); the cap is then the lower of the configured
one and ``limit``, checked whenever a slot is asked for, so a lowered limit applies to the
next connection while those already open finish their work.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol


class MxSlots(Protocol):
    def acquire(self, mx_key: str, limit: int | None = None) -> AbstractAsyncContextManager[None]:
        """Hold one connection slot for ``mx_key`` (an MX IP address) while inside; at most
        ``limit`` (when given) or the configured cap are held at once."""
        ...


class _Key:
    """Slots of one MX key: how many are held, and who waits for one."""

    def __init__(self) -> None:
        self.held = 0
        self.users = 0  # holders and waiters (the entry is dropped when none is left)
        self.freed = asyncio.Condition()


class LocalMxSlots:
    """At most ``per_mx`` (or the learned ``limit``) simultaneous connections per MX key,
    within this process."""

    def __init__(self, per_mx: int) -> None:
        self._per_mx = max(1, per_mx)
        self._keys: dict[str, _Key] = {}

    @asynccontextmanager
    async def acquire(self, mx_key: str, limit: int | None = None) -> AsyncIterator[None]:
        cap = max(1, min(self._per_mx, limit or self._per_mx))
        entry = self._keys.get(mx_key)
        if entry is None:
            entry = self._keys[mx_key] = _Key()
        entry.users += 1
        try:
            async with entry.freed:
                await entry.freed.wait_for(lambda: entry.held < cap)
                entry.held += 1
            try:
                yield
            finally:
                async with entry.freed:
                    entry.held -= 1
                    entry.freed.notify_all()
        finally:
            # Drop idle keys so a long batch over many domains does not grow forever.
            entry.users -= 1
            if not entry.users and self._keys.get(mx_key) is entry:
                del self._keys[mx_key]
