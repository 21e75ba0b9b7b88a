"""Connection limits: a global cap and a per-MX cap behind a small interface.

:class:`MxSlots` is what the engine needs; :class:`LocalMxSlots` keeps asyncio semaphores in
this process. A scale-out deployment (several workers probing the same MX) can plug a Redis
or PostgreSQL-backed implementation with the same ``acquire`` context manager.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol


class MxSlots(Protocol):
    def acquire(self, mx_key: str) -> AbstractAsyncContextManager[None]:
        """Hold one connection slot for ``mx_key`` (an MX IP address) while inside."""
        ...


class LocalMxSlots:
    """At most ``per_mx`` simultaneous connections per MX key, within this process."""

    def __init__(self, per_mx: int) -> None:
        self._per_mx = max(1, per_mx)
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def acquire(self, mx_key: str) -> AsyncIterator[None]:
        semaphore = self._semaphores.get(mx_key)
        if semaphore is None:
            semaphore = self._semaphores[mx_key] = asyncio.Semaphore(self._per_mx)
        self._users[mx_key] = self._users.get(mx_key, 0) + 1
        try:
            async with semaphore:
                yield
        finally:
            # Drop idle semaphores so a long batch over many domains does not grow forever.
            self._users[mx_key] -= 1
            if not self._users[mx_key]:
                del self._users[mx_key]
                del self._semaphores[mx_key]
