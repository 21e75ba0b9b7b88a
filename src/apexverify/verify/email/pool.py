"""Idle SMTP connections kept for a few seconds per MX address, for the next chunk.

The batch runner hands the engine ~500 addresses at a time, in upload order, so the same
domains come back chunk after chunk. Reusing a connection costs MAIL + RCPT + RSET instead
of TCP + greeting + EHLO (+ STARTTLS) + MAIL + RCPT + QUIT.

Bounds: at most ``per_key`` idle connections per MX address (the per-MX limit, so an MX
never sees more open connections from us than the limit while slots are local) and at most
``total`` idle connections overall; the oldest is closed (with QUIT) to make room.

A connection idle for ``idle_seconds`` is closed with QUIT when that time is up, by a reaper
task (started on the running loop with the first idle connection, ended when the pool is
empty or closed): expiry checked only when the pool is next used let idle connections linger
for as long as the next chunk took, and an MX counts those against us.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from .smtp import ProbeConnection

# A reaper woken a hair early (the loop's clock resolution) sleeps at least this long before
# looking again, instead of spinning.
_MIN_NAP = 0.005


class IdlePool:
    def __init__(self, per_key: int, total: int, idle_seconds: float) -> None:
        self.per_key = max(1, per_key)
        self.total = max(1, total)
        self.idle_seconds = idle_seconds
        # Per key, oldest first (``put`` appends with the current time).
        self._idle: dict[str, list[tuple[float, ProbeConnection]]] = {}
        self._count = 0
        self._closing: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None

    def take(self, key: str) -> ProbeConnection | None:
        """The most recently used idle connection to ``key`` that is still fit for use."""
        now = time.monotonic()
        entries = self._idle.get(key)
        while entries:
            since, connection = entries.pop()
            self._count -= 1
            if now - since < self.idle_seconds and connection.usable:
                if not entries:
                    del self._idle[key]
                return connection
            self._close(connection)
        self._idle.pop(key, None)
        return None

    def put(self, key: str, connection: ProbeConnection) -> None:
        if not connection.usable:
            connection.close()
            return
        entries = self._idle.get(key)
        if entries and len(entries) >= self.per_key:
            self._close(entries.pop(0)[1])
            self._count -= 1
        elif self._count >= self.total:
            self._evict_oldest()
        self._idle.setdefault(key, []).append((time.monotonic(), connection))
        self._count += 1
        self._ensure_reaper()

    def _evict_oldest(self) -> None:
        oldest_key = min(self._idle, key=lambda k: self._idle[k][0][0])
        entries = self._idle[oldest_key]
        self._close(entries.pop(0)[1])
        self._count -= 1
        if not entries:
            del self._idle[oldest_key]

    # -- the reaper ----------------------------------------------------------------------

    def _ensure_reaper(self) -> None:
        loop = asyncio.get_running_loop()
        reaper = self._reaper
        if reaper is None or reaper.done() or reaper.get_loop() is not loop:
            self._reaper = loop.create_task(self._reap(), name="smtp-idle-reaper")

    async def _reap(self) -> None:
        """Close each idle connection when its idle time is up; end once none is left."""
        while self._idle:
            now = time.monotonic()
            self._sweep(now)
            due = self._next_expiry()
            if due is None:
                return
            await asyncio.sleep(max(due - now, _MIN_NAP))

    def _next_expiry(self) -> float | None:
        oldest = [entries[0][0] for entries in self._idle.values() if entries]
        return min(oldest) + self.idle_seconds if oldest else None

    def _sweep(self, now: float) -> None:
        for key in list(self._idle):
            fresh = []
            for since, connection in self._idle[key]:
                if now - since < self.idle_seconds and connection.usable:
                    fresh.append((since, connection))
                else:
                    self._close(connection)
                    self._count -= 1
            if fresh:
                self._idle[key] = fresh
            else:
                del self._idle[key]

    def _close(self, connection: ProbeConnection) -> None:
        # QUIT in the background: the caller holds connection slots and should not wait.
        task = asyncio.get_running_loop().create_task(connection.quit())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        reaper, self._reaper = self._reaper, None
        if reaper is not None and reaper.get_loop() is asyncio.get_running_loop():
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper
        for entries in self._idle.values():
            for _, connection in entries:
                self._close(connection)
        self._idle.clear()
        self._count = 0
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
