"""Job bodies in a process of their own, beside the embedded server.

The embedded server runs its jobs in its own process, and a CPU-heavy body there holds the
GIL its event loop needs: a parse's dedupe and row binding, the unpickling of its classified
blocks, a sandbox chunk's claim, decisions and write. Under a 1M parse plus a 1M sandbox
verification the job threads held the GIL more than half the time (py-spy ``--gil``) and the
status endpoint's p99 rose from 5 ms to 50-185 ms (``docs/benchmarks.md``, "The status
endpoint under load").

A :class:`ProcessHost` runs such bodies in one long-lived child process instead (forkserver,
like the parse workers; at a lower priority, which now only matters for the cores). The child
builds its own context once (``factory``: the services, with a database engine of its own)
and runs each ``fn(context, *args)`` on one of its threads, so a long parse and a
verification's chunks progress side by side there as they did on the server's threads.
Arguments and results cross a pipe by pickle, so they are IDs and small values. What a body
defers through its context's queue (a webhook delivery after a parse published) is recorded
there and submitted to this process's queue when the body returns: after the transaction
that deferred it committed, as ``JobQueue.submit_with`` does in this process.

A host whose process died (killed, out of memory) raises :class:`HostLost` for the bodies in
flight and starts a new process for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import logging
import os
import pickle
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context, util
from multiprocessing.connection import Connection
from typing import Any, Generic, TypeVar

from .base import Job, JobQueue, Periodic
from .inprocess import JOB_NICENESS
from .orphans import exit_with

log = logging.getLogger(__name__)

C = TypeVar("C")

# Bodies running at once in a host (a parse or two beside a chunk; they share its GIL).
HOST_THREADS = 4


class HostLost(RuntimeError):
    """The host process died while running a body (the body may have run partly)."""


@dataclass
class _Outcome:
    result: Any = None
    error: BaseException | None = None
    deferred: list[Job] = field(default_factory=list)


# -- the host process ---------------------------------------------------------------------------

# The jobs the body running on this thread deferred.
_BODY = threading.local()


class RecordingQueue(JobQueue):
    """The queue of a host process: jobs are recorded and handed to the server's queue."""

    def submit(self, job: Job) -> bool:
        deferred: list[Job] | None = getattr(_BODY, "deferred", None)
        if deferred is None:
            raise RuntimeError("a job host defers jobs only from a body")
        deferred.append(job)
        return True

    def active(self, task: str | None = None, **match: str) -> bool:
        raise RuntimeError("a job host cannot see the server's queue; ask in the server")

    async def start(self, periodic: tuple[Periodic, ...] = ()) -> None:
        raise RuntimeError("a job host runs bodies, not a queue")

    async def stop(self) -> None:
        return None


def _call(context: Any, payload: bytes) -> _Outcome:
    """One body, and what it deferred even when it failed afterwards."""
    deferred: list[Job] = []
    _BODY.deferred = deferred
    try:
        fn, args = pickle.loads(payload)
        return _Outcome(result=fn(context, *args), deferred=deferred)
    except Exception as exc:
        return _Outcome(error=_picklable(exc), deferred=deferred)
    finally:
        _BODY.deferred = None


def _picklable(exc: Exception) -> Exception:
    """``exc`` itself when it survives the trip back (its type decides the retry policy),
    else a RuntimeError that keeps its message."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


class _Host:
    """The child's side: read calls from the pipe, run each on a thread, answer each."""

    def __init__(self, conn: Connection, context: Any, release: Callable[[Any], None] | None):
        self.conn = conn
        self.context = context
        self.release = release
        self.send_lock = threading.Lock()
        self.guard = threading.Lock()
        self.running = 0

    def serve(self, threads: int) -> None:
        pool = ThreadPoolExecutor(threads, thread_name_prefix="job-host")
        self._send(("ready", os.getpid()))
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):  # the server closed its end, or is gone
                break
            if message is None:
                break
            with self.guard:
                self.running += 1
            pool.submit(self._one, *message)
        # Bodies in flight are abandoned: they are idempotent, and the sweep redoes them.
        os._exit(0)

    def _one(self, call_id: int, payload: bytes) -> None:
        """Run one body and always answer: the caller waits for exactly this answer."""
        try:
            outcome = _call(self.context, payload)
        except BaseException as exc:  # a body that called sys.exit(): still an answer
            outcome = _Outcome(error=RuntimeError(f"the body ended with {exc!r}"))
        with self.guard:
            self.running -= 1
            idle = self.running == 0
        if idle:  # before answering: the caller's next body finds the memory given back
            try:
                self._give_back_memory()
            except Exception:
                log.exception("the job process could not release its caches")
        try:
            data = pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an unpicklable result
            failed = _Outcome(error=RuntimeError(f"its result cannot be sent back: {exc}"))
            failed.deferred = outcome.deferred
            data = pickle.dumps(failed, protocol=pickle.HIGHEST_PROTOCOL)
        with contextlib.suppress(OSError):  # the server is gone
            self._send((call_id, data))

    def _send(self, message: object) -> None:
        with self.send_lock:
            self.conn.send(message)

    def _give_back_memory(self) -> None:
        """Once no body runs, let go of what the last ones cached (``release``: the
        context's database connections and their page caches) and return the freed heap to
        the system: the host otherwise held on to about 100 MB after a 1M parse, counted in
        the server's memory until the next one."""
        if self.release is not None:
            self.release(self.context)
        if _TRIM is not None:
            _TRIM(0)


def _host_main(
    conn: Connection,
    server_pid: int,
    factory: Callable[[JobQueue], Any],
    release: Callable[[Any], None] | None,
    threads: int,
) -> None:
    """The host process: follow the server out, give way to it, build the context, serve."""
    exit_with(server_pid)
    if sys.platform == "linux":
        try:
            os.setpriority(os.PRIO_PROCESS, 0, JOB_NICENESS)
        except OSError as exc:  # a sandbox that forbids it: the host keeps the server's
            log.debug("job host keeps the server's priority (%s)", exc)
    _Host(conn, factory(RecordingQueue()), release).serve(threads)


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


_TRIM = _malloc_trim()


# -- the server's side --------------------------------------------------------------------------

_Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[_Outcome]"]


class _Link:
    """One host process and the pipe to it; a reader thread settles the callers' futures."""

    def __init__(self, name: str, target_args: tuple[Any, ...]) -> None:
        context = get_context("forkserver")
        self.conn, child_end = context.Pipe()
        self.process = context.Process(
            target=_host_main, args=(child_end, *target_args), name=f"apexverify-{name}"
        )
        self.process.start()
        child_end.close()
        self.lock = threading.Lock()
        self.waiting: dict[int, _Waiter] = {}
        self.ids = itertools.count()
        self.broken = False
        self.ready = threading.Event()
        self.pid = 0
        self.reader = threading.Thread(target=self._read, name=f"{name}-host-reader", daemon=True)
        self.reader.start()
        # At interpreter exit multiprocessing joins the children that are not daemons (this
        # one cannot be: it starts the parse workers); end it first, or the join waits.
        util.Finalize(self, self.close, exitpriority=10)

    def send(self, fn: Callable[..., Any], args: tuple[Any, ...], waiter: _Waiter) -> None:
        payload = pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL)
        with self.lock:
            if self.broken:
                raise HostLost("the job process is gone")
            call_id = next(self.ids)
            self.waiting[call_id] = waiter
            try:
                self.conn.send((call_id, payload))
            except OSError as exc:
                del self.waiting[call_id]
                self.broken = True
                raise HostLost("the job process is gone") from exc

    def _read(self) -> None:
        try:
            while True:
                message = self.conn.recv()
                if message[0] == "ready":
                    self.pid = message[1]
                    self.ready.set()
                    continue
                call_id, data = message
                with self.lock:
                    waiter = self.waiting.pop(call_id, None)
                if waiter is not None:
                    _settle(waiter, _unpickled(data))
        except (EOFError, OSError):
            pass
        with self.lock:
            self.broken = True
            lost, self.waiting = list(self.waiting.values()), {}
        self.ready.set()
        for waiter in lost:
            _settle(waiter, HostLost("the job process died"))

    def close(self) -> None:
        with self.lock:
            self.broken = True
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(5)
        with contextlib.suppress(OSError):
            self.conn.close()
        self.reader.join(5)


def _unpickled(data: bytes) -> _Outcome:
    """An answer read here: a result or an exception this process cannot rebuild (a class
    it does not have) becomes the body's error instead of ending the reader."""
    try:
        outcome = pickle.loads(data)
    except Exception as exc:
        return _Outcome(error=RuntimeError(f"the job process's answer cannot be read: {exc!r}"))
    assert isinstance(outcome, _Outcome)
    return outcome


def _settle(waiter: _Waiter, outcome: _Outcome | HostLost) -> None:
    loop, future = waiter

    def settle() -> None:
        if future.done():  # the caller was cancelled
            return
        if isinstance(outcome, HostLost):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
        loop.call_soon_threadsafe(settle)


class ProcessHost(Generic[C]):
    """One child process running job bodies ``fn(context, *args)``, several at once.

    ``factory`` (module-level, picklable) builds the context in the child from the queue
    that records deferred jobs; ``queue`` is this process's queue, which receives them;
    ``release`` (module-level) runs in the child whenever no body is running."""

    def __init__(
        self,
        name: str,
        factory: Callable[[JobQueue], C],
        queue: JobQueue,
        release: Callable[[C], None] | None = None,
        threads: int = HOST_THREADS,
    ) -> None:
        self.name = name
        self._args = (os.getpid(), factory, release, threads)
        self._queue = queue
        self._guard = threading.Lock()
        self._link: _Link | None = None

    def _current(self) -> _Link:
        with self._guard:
            if self._link is None or self._link.broken:
                if self._link is not None:
                    self._link.close()
                self._link = _Link(self.name, (*self._args,))
            return self._link

    def warm(self) -> int:
        """Start the process ahead of the first body (its imports take a second); its pid,
        once it is ready (0 if it died starting)."""
        link = self._current()
        link.ready.wait(120)
        return link.pid

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(context, *args)`` in the host; its result, or its exception raised here."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_Outcome] = loop.create_future()
        self._current().send(fn, args, (loop, future))
        outcome = await future
        for job in outcome.deferred:
            self._queue.submit(job)
        if outcome.error is not None:
            raise outcome.error
        return outcome.result

    def stop(self) -> None:
        """End the process now: bodies in flight are abandoned (they are idempotent, and
        the batches sweep redoes unfinished work at the next start)."""
        with self._guard:
            link, self._link = self._link, None
        if link is not None:
            link.close()
