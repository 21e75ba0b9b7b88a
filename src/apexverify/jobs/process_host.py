"""Job bodies in a process of their own, beside the embedded server.

The embedded server runs its jobs in its own process, and a CPU-heavy body there holds the
GIL its event loop needs: a parse's dedupe and row binding, the unpickling of its classified
blocks, a sandbox chunk's claim, decisions and write. Under a 1M parse plus a 1M sandbox
verification the job threads held the GIL more than half the time (py-spy ``--gil``) and the
status endpoint's p99 rose from 5 ms to 50-185 ms (``docs/benchmarks.md``, "The status
endpoint under load").

A :class:`ProcessHost` runs such a body in one long-lived child process instead (forkserver,
like the parse workers; at a lower priority, which only matters for the cores now). The child
builds its own context once (``factory``: the services, with a database engine of its own)
and runs ``fn(context, *args)``; arguments and result cross by pickle, so they are IDs and
small values. What the body defers through its context's queue (a webhook delivery after a
parse published) is recorded there and submitted to this process's queue when the body
returns: after the transaction that deferred it committed, as ``JobQueue.submit_with`` does
in this process.

One body runs at a time per host. A host whose process died (killed, out of memory) raises
:class:`HostLost` for the bodies in flight and starts a new process for the next one.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import pickle
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any, Generic, TypeVar

from .base import Job, JobQueue, Periodic
from .inprocess import JOB_NICENESS
from .orphans import exit_with

log = logging.getLogger(__name__)

C = TypeVar("C")

# The child's context and the jobs its current body deferred (module state: one per process).
_CONTEXT: Any = None
_RELEASE: Callable[[Any], None] | None = None
_DEFERRED: list[Job] = []


class HostLost(RuntimeError):
    """The host process died while running a body (the body may have run partly)."""


class RecordingQueue(JobQueue):
    """The queue of a host process: jobs are recorded and handed to the server's queue."""

    def submit(self, job: Job) -> bool:
        _DEFERRED.append(job)
        return True

    def active(self, task: str | None = None, **match: str) -> bool:
        raise RuntimeError("a job host cannot see the server's queue; ask in the server")

    async def start(self, periodic: tuple[Periodic, ...] = ()) -> None:
        raise RuntimeError("a job host runs bodies, not a queue")

    async def stop(self) -> None:
        return None


@dataclass
class _Outcome:
    result: Any = None
    error: BaseException | None = None
    deferred: list[Job] = field(default_factory=list)


def _start(
    server_pid: int, factory: Callable[[JobQueue], Any], release: Callable[[Any], None] | None
) -> None:
    """Host initializer: follow the server out, give way to it, build the context."""
    global _CONTEXT, _RELEASE
    _RELEASE = release
    exit_with(server_pid)
    if sys.platform == "linux":
        try:
            os.setpriority(os.PRIO_PROCESS, 0, JOB_NICENESS)
        except OSError as exc:  # a sandbox that forbids it: the host keeps the server's
            log.debug("job host keeps the server's priority (%s)", exc)
    _CONTEXT = factory(RecordingQueue())


def _ready() -> int:
    return os.getpid()


def _call(fn: Callable[..., Any], args: tuple[Any, ...]) -> _Outcome:
    """Runs in the host: the body, and what it deferred even when it failed afterwards."""
    _DEFERRED.clear()
    try:
        return _Outcome(result=fn(_CONTEXT, *args), deferred=list(_DEFERRED))
    except Exception as exc:
        return _Outcome(error=_picklable(exc), deferred=list(_DEFERRED))
    finally:
        _DEFERRED.clear()
        _give_back_memory()


def _give_back_memory() -> None:
    """Between bodies, let go of what the last one cached (``release``: the context's
    database connections and their page caches) and return the freed heap to the system:
    the host otherwise held on to about 100 MB after a 1M parse, counted in the server's
    memory until the next one."""
    if _RELEASE is not None:
        _RELEASE(_CONTEXT)
    if _TRIM is not None:
        _TRIM(0)


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
        return trim
    except (OSError, AttributeError):  # not glibc
        return None


_TRIM = _malloc_trim()


def _picklable(exc: Exception) -> Exception:
    """``exc`` itself when it survives the trip back (its type decides the retry policy),
    else a RuntimeError that keeps its message."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


class ProcessHost(Generic[C]):
    """One child process running job bodies ``fn(context, *args)`` one at a time.

    ``factory`` (module-level, picklable) builds the context in the child from the queue
    that records deferred jobs; ``queue`` is this process's queue, which receives them;
    ``release`` (module-level) runs in the child after each body."""

    def __init__(
        self,
        name: str,
        factory: Callable[[JobQueue], C],
        queue: JobQueue,
        release: Callable[[C], None] | None = None,
    ) -> None:
        self.name = name
        self._factory = factory
        self._release = release
        self._queue = queue
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                1,
                mp_context=get_context("forkserver"),
                initializer=_start,
                initargs=(os.getpid(), self._factory, self._release),
            )
        return self._executor

    def warm(self) -> int:
        """Start the process ahead of the first body (its imports take a second); its pid."""
        return self._pool().submit(_ready).result()

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(context, *args)`` in the host; its result, or its exception raised here."""
        pool = self._pool()
        try:
            outcome: _Outcome = await asyncio.wrap_future(pool.submit(_call, fn, args))
        except BrokenProcessPool as exc:
            if self._executor is pool:
                self._executor = None  # the next body starts a new process
                pool.shutdown(wait=False, cancel_futures=True)
            raise HostLost(f"the {self.name} job process died") from exc
        for job in outcome.deferred:
            self._queue.submit(job)
        if outcome.error is not None:
            raise outcome.error
        return outcome.result

    def stop(self) -> None:
        """End the process now: a body in flight is abandoned (bodies are idempotent and
        the batches sweep redoes unfinished work at the next start)."""
        pool, self._executor = self._executor, None
        if pool is None:
            return
        processes = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(5)
