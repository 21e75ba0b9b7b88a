"""In-process runner: asyncio tasks inside the server process.

Durability does not come from the runner but from the database: tasks are idempotent and
``batches.tasks.resume_all`` re-defers whatever was unfinished when the process died.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

from .base import JobRunner

log = logging.getLogger(__name__)


class InProcessRunner(JobRunner):
    def __init__(self) -> None:
        super().__init__()
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._running: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False

    def defer(self, name: str, *, lock: str, **kwargs: Any) -> None:
        if not self._started or self._loop is None:
            return  # resume_all picks it up at the next start
        coro = self._run(name, lock, kwargs)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._track(self._loop.create_task(coro))
        else:  # called from a worker thread (sync endpoints)
            asyncio.run_coroutine_threadsafe(self._spawn(coro), self._loop)

    async def _spawn(self, coro: Any) -> None:
        self._track(asyncio.create_task(coro))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, name: str, lock: str, kwargs: dict[str, Any]) -> None:
        async with self._locks[lock]:
            try:
                await self.tasks[name](**kwargs)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("task %s failed (lock %s)", name, lock)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._started = True

    async def stop(self) -> None:
        self._started = False
        for task in list(self._running):
            task.cancel()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def drain(self) -> None:
        """Wait until no task is running (tests, CLI one-shots)."""
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)
