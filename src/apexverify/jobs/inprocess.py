"""The in-process queue: jobs run as asyncio tasks inside the server process.

A small real queue with the semantics of the procrastinate one: priorities, delayed jobs,
locks (one job per lock at a time, in order), dedupe keys and a fixed number of jobs running
at once. Jobs live in memory: durability comes from the database, not from this queue. The
tasks are idempotent and the batches feature's periodic sweep re-defers whatever a dead
process left unfinished.

``defer`` may be called from any thread (sync endpoints run in a thread pool); the state is
guarded by a lock and the workers are woken on the event loop.

Jobs share the server's process with the API, so they give way to it: :meth:`start` makes
the loop's default executor (where the tasks' ``asyncio.to_thread`` work runs: a parse's
loader, a chunk's claim and write) a pool of threads at a lower scheduling priority
(:data:`JOB_NICENESS`, Linux), and the processes those threads start (the parse workers)
inherit it. On a busy machine the event loop's thread then gets the cores first: the status
endpoint under a 1M parse plus a verification answered about twice the requests with a
fraction of the tail latency (``docs/benchmarks.md``). On an idle machine nothing changes: a
lower priority only matters when threads compete for a core. The few request paths that also
use ``asyncio.to_thread`` (an upload's file writes, CORS and upload-guard look-ups) run in
that pool too.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import os
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from ..logs import job_context
from .base import Job, JobQueue, Periodic, run_every

log = logging.getLogger(__name__)

# The nice value of the job threads (0 is the server's; 19 the lowest). 10 gives a busy event
# loop about ten times their share of a contended core.
JOB_NICENESS = 10


def lower_thread_priority() -> None:
    """Thread initializer: this thread (not the process) at :data:`JOB_NICENESS`. Linux only,
    where priorities are per thread; elsewhere jobs keep the server's."""
    if sys.platform != "linux":
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), JOB_NICENESS)
    except OSError as exc:  # a sandbox that forbids it: jobs run as before
        log.debug("job threads keep the server's priority (%s)", exc)


def job_executor() -> ThreadPoolExecutor:
    """asyncio's default executor (same size) with threads at the jobs' priority."""
    return ThreadPoolExecutor(
        max_workers=min(32, (os.cpu_count() or 1) + 4),
        thread_name_prefix="apexverify-job",
        initializer=lower_thread_priority,
    )


class InProcessQueue(JobQueue):
    def __init__(self, concurrency: int = 4) -> None:
        super().__init__()
        self.concurrency = max(1, concurrency)
        self._guard = threading.Lock()
        self._order = itertools.count()
        self._ready: list[tuple[int, int, Job]] = []  # (-priority, order, job)
        self._delayed: list[tuple[float, int, Job]] = []  # (run_at, order, job)
        self._held_locks: set[str] = set()
        # Jobs parked behind a held lock, in their original (priority, order): released in
        # that order, as procrastinate does for jobs sharing a lock.
        self._lock_waiters: defaultdict[str, list[tuple[int, int, Job]]] = defaultdict(list)
        self._live: dict[str, Job] = {}  # dedupe key -> job waiting or running
        self._running = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._executor_loop: asyncio.AbstractEventLoop | None = None

    # -- enqueue ---------------------------------------------------------------------------

    def submit(self, job: Job) -> bool:
        with self._guard:
            if job.key in self._live:
                return False
            self._live[job.key] = job
            order = next(self._order)
            if job.run_at is not None and job.run_at > time.time():
                heapq.heappush(self._delayed, (job.run_at, order, job))
            else:
                heapq.heappush(self._ready, (-job.priority, order, job))
        self._notify()
        return True

    def active(self, task: str | None = None, **match: str) -> bool:
        with self._guard:
            return any(
                (task is None or job.task == task)
                and all(job.args.get(k) == v for k, v in match.items())
                for job in self._live.values()
            )

    def _notify(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            loop.call_soon_threadsafe(wake.set)

    # -- execute ---------------------------------------------------------------------------

    def _take(self) -> tuple[Job | None, float | None]:
        """The next due job whose lock is free, or None and how long until one is due."""
        with self._guard:
            now = time.time()
            while self._delayed and self._delayed[0][0] <= now:
                _at, order, job = heapq.heappop(self._delayed)
                heapq.heappush(self._ready, (-job.priority, order, job))
            while self._ready:
                entry = heapq.heappop(self._ready)
                job = entry[2]
                if job.lock is not None and job.lock in self._held_locks:
                    heapq.heappush(self._lock_waiters[job.lock], entry)
                    continue
                if job.lock is not None:
                    self._held_locks.add(job.lock)
                self._running += 1
                return job, None
            wait = self._delayed[0][0] - now if self._delayed else None
            return None, wait

    def _finish(self, job: Job) -> None:
        with self._guard:
            self._running -= 1
            self._live.pop(job.key, None)
            if job.lock is not None:
                self._held_locks.discard(job.lock)
                waiters = self._lock_waiters.get(job.lock)
                if waiters:
                    heapq.heappush(self._ready, heapq.heappop(waiters))
                if not waiters:
                    self._lock_waiters.pop(job.lock, None)
        self._notify()

    async def _work(self) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            job, wait = self._take()
            if job is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                continue
            # The job's lines (its failure too) name its batch: logs.BATCH_UUID.
            with job_context(job.args):
                try:
                    await self.tasks[job.task](**job.args)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("job %s failed (%s)", job.task, job.key)
                finally:
                    self._finish(job)

    async def start(self, periodic: tuple[Periodic, ...] = ()) -> None:
        loop = self._loop = asyncio.get_running_loop()
        if self._executor_loop is not loop:
            # The loop shuts its default executor down when it closes.
            loop.set_default_executor(job_executor())
            self._executor_loop = loop
        self._wake = asyncio.Event()
        self._workers = [asyncio.create_task(self._work()) for _ in range(self.concurrency)]
        self._workers += [asyncio.create_task(run_every(p)) for p in periodic]

    async def stop(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        self._loop = self._wake = None

    async def drain(self) -> None:
        """Wait until no job is waiting or running (tests, CLI one-shots)."""
        while True:
            with self._guard:
                idle = not self._live
            if idle:
                return
            await asyncio.sleep(0.01)
