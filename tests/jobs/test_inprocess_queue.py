"""The real in-process queue (``jobs/inprocess.py``): locks, concurrency, priorities, delayed
jobs, dedupe keys, ``active``, defers from other threads, failures, periodic functions, stop
and drain. Jobs are driven by gates (``asyncio.Event``), never by the clock: every wait is
bounded and generous, and nothing asserts how long something took."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

import pytest

from apexverify.jobs.base import Periodic
from apexverify.jobs.inprocess import InProcessQueue

pytestmark = pytest.mark.fast

TIMEOUT = 20.0  # seconds: a bound for waits that normally end at once, never an assertion


async def until(condition: Callable[[], bool], what: str = "condition") -> None:
    """Wait until ``condition()`` holds (bounded by a generous timeout)."""
    try:
        async with asyncio.timeout(TIMEOUT):
            # Polling: the conditions are arbitrary observations, not events to wait on.
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(0.005)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


async def settle() -> None:
    """Give every worker many turns of the event loop (to show that something does NOT
    happen: a job that must not start yet has had every chance to)."""
    for _ in range(20):
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)


class Board:
    """The ``job`` task: records starts and ends, counts what runs at once, and waits on a
    gate when one was set up for the job's name with :meth:`hold`."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.running: set[str] = set()
        self.most_running = 0
        self.runs: dict[str, int] = {}
        self.gates: dict[str, asyncio.Event] = {}
        self.cancelled: list[str] = []
        self.start_times: dict[str, float] = {}

    def hold(self, *names: str) -> None:
        for name in names:
            self.gates[name] = asyncio.Event()

    def release(self, *names: str) -> None:
        for name in names:
            self.gates[name].set()

    def release_all(self) -> None:
        for gate in self.gates.values():
            gate.set()

    def has_started(self, name: str) -> bool:
        return name in self.started

    @property
    def started(self) -> list[str]:
        return [name for kind, name in self.events if kind == "start"]

    @property
    def finished(self) -> list[str]:
        return [name for kind, name in self.events if kind == "end"]

    async def job(self, name: str, group: str = "") -> None:
        self.events.append(("start", name))
        self.start_times.setdefault(name, time.time())
        self.runs[name] = self.runs.get(name, 0) + 1
        self.running.add(name)
        self.most_running = max(self.most_running, len(self.running))
        try:
            gate = self.gates.get(name)
            if gate is not None:
                await gate.wait()
            # A few turns of the loop even when not held: other workers get to act meanwhile.
            for _ in range(3):
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            self.cancelled.append(name)
            raise
        finally:
            self.running.discard(name)
            self.events.append(("end", name))


class StartQueue(Protocol):
    def __call__(
        self, concurrency: int = 4, periodic: tuple[Periodic, ...] = ()
    ) -> Awaitable[InProcessQueue]: ...


@pytest.fixture
def board() -> Board:
    return Board()


@pytest.fixture
async def start_queue(board: Board) -> AsyncIterator[StartQueue]:
    """Start a real queue with the ``job`` task registered; stopped at the end of the test."""
    queues: list[InProcessQueue] = []

    async def start(concurrency: int = 4, periodic: tuple[Periodic, ...] = ()) -> InProcessQueue:
        queue = InProcessQueue(concurrency=concurrency)
        queue.register("job", board.job)
        await queue.start(periodic)
        queues.append(queue)
        return queue

    yield start
    board.release_all()
    for queue in queues:
        await queue.stop()


async def drained(queue: InProcessQueue) -> None:
    try:
        async with asyncio.timeout(TIMEOUT):
            await queue.drain()
    except TimeoutError:
        pytest.fail("the queue did not drain")


# -- locks and concurrency -----------------------------------------------------------------


async def test_jobs_sharing_a_lock_run_one_at_a_time_in_submission_order(
    board: Board, start_queue: StartQueue
) -> None:
    queue = await start_queue(concurrency=4)
    names = [f"l{i}" for i in range(6)]
    board.hold(*names)
    for name in names:
        assert queue.defer("job", {"name": name}, lock="L")
    for i, name in enumerate(names):
        await until(functools.partial(board.has_started, name), f"{name} to start")
        await settle()  # three workers are idle: none may start the next job of the lock
        assert board.started == names[: i + 1]
        assert board.running == {name}
        board.release(name)
    await drained(queue)
    # Strictly one after the other: each one ended before the next one started.
    assert board.events == [(kind, n) for n in names for kind in ("start", "end")]


async def test_jobs_of_different_locks_run_side_by_side(
    board: Board, start_queue: StartQueue
) -> None:
    queue = await start_queue(concurrency=4)
    board.hold("a1", "b1")
    queue.defer("job", {"name": "a1"}, lock="A")
    queue.defer("job", {"name": "a2"}, lock="A")
    queue.defer("job", {"name": "b1"}, lock="B")
    await until(lambda: board.running == {"a1", "b1"}, "one job of each lock to run")
    await settle()
    assert "a2" not in board.started
    board.release_all()
    await drained(queue)
    assert board.started.index("a2") > board.finished.index("a1")


async def test_a_lock_keeps_submission_order_when_a_waiter_was_parked(
    board: Board, start_queue: StartQueue
) -> None:
    queue = await start_queue(concurrency=2)
    board.hold("A", "X")
    queue.defer("job", {"name": "A"}, lock="L")
    await until(lambda: board.started == ["A"], "A to start")
    # The idle worker takes B first (submission order), finds L held and parks B; then X.
    queue.defer("job", {"name": "B"}, lock="L")
    queue.defer("job", {"name": "X"})
    await until(lambda: board.running == {"A", "X"}, "X to start on the second worker")
    # Both workers busy: D waits in the ready heap, behind B in submission order.
    queue.defer("job", {"name": "D"}, lock="L")
    board.release("A")
    board.release_all()
    await drained(queue)
    assert [name for name in board.started if name != "X"] == ["A", "B", "D"]


async def test_jobs_without_a_lock_run_up_to_concurrency_at_once_and_never_more(
    board: Board, start_queue: StartQueue
) -> None:
    queue = await start_queue(concurrency=3)
    names = [f"j{i}" for i in range(8)]
    board.hold(*names)
    for name in names:
        queue.defer("job", {"name": name})
    await until(lambda: len(board.running) == 3, "three jobs to run")
    await settle()
    assert len(board.running) == 3
    assert board.started == names[:3]
    # Finishing one lets exactly one more in.
    board.release(names[0])
    await until(lambda: len(board.started) == 4, "a fourth job to start")
    await settle()
    assert len(board.running) == 3
    board.release_all()
    await drained(queue)
    assert sorted(board.finished) == sorted(names)
    assert board.most_running == 3


async def test_concurrency_is_at_least_one() -> None:
    assert InProcessQueue(concurrency=0).concurrency == 1


# -- priorities and delayed jobs -----------------------------------------------------------


async def test_a_higher_priority_due_job_runs_before_lower_ones(
    board: Board, start_queue: StartQueue
) -> None:
    queue = await start_queue(concurrency=1)
    board.hold("blocker")
    queue.defer("job", {"name": "blocker"})
    await until(lambda: board.started == ["blocker"], "the blocker to start")
    queue.defer("job", {"name": "low"}, priority=0)
    queue.defer("job", {"name": "mid-1"}, priority=5)
    queue.defer("job", {"name": "high"}, priority=10)
    queue.defer("job", {"name": "mid-2"}, priority=5)
    queue.defer("job", {"name": "negative"}, priority=-1)
    board.release("blocker")
    await drained(queue)
    # By priority; equal priorities in submission order.
    assert board.started == ["blocker", "high", "mid-1", "mid-2", "low", "negative"]


async def test_a_job_with_run_at_in_the_future_does_not_run_before_it(
    board: Board, start_queue: StartQueue
) -> None:
    queue = await start_queue(concurrency=2)
    queue.defer("job", {"name": "now"})
    run_at = time.time() + 0.3
    # A higher priority and two idle workers: still not before its time.
    queue.defer("job", {"name": "later"}, run_at=run_at, priority=100)
    queue.defer("job", {"name": "far"}, run_at=time.time() + 3600, priority=100)
    queue.defer("job", {"name": "past"}, run_at=time.time() - 10)  # overdue: due at once
    await until(lambda: {"now", "past"} <= set(board.finished), "the due jobs to run")
    await until(lambda: "later" in board.finished, "the delayed job to run once due")
    # The queue's clock is time.time(): the job started at or after its run_at.
    assert board.start_times["later"] >= run_at
    assert board.started.index("later") > board.started.index("now")
    # An hour away: other jobs ran, it is waiting, not running.
    await settle()
    assert "far" not in board.started
    assert queue.active("job", name="far")
    assert not queue.active("job", name="later")


async def test_a_delayed_job_runs_when_an_earlier_one_is_deferred_after_a_later_one(
    board: Board, start_queue: StartQueue
) -> None:
    # The idle workers sleep until the first delayed job is due: a sooner one must wake them.
    queue = await start_queue(concurrency=1)
    queue.defer("job", {"name": "far"}, run_at=time.time() + 3600)
    await settle()
    queue.defer("job", {"name": "soon"}, run_at=time.time() + 0.2)
    await until(lambda: "soon" in board.finished, "the sooner delayed job to run")
    assert "far" not in board.started


# -- dedupe keys and active() --------------------------------------------------------------


async def test_a_second_defer_with_the_same_dedupe_key_is_refused_while_waiting_or_running(
    board: Board, start_queue: StartQueue
) -> None:
    queue = await start_queue(concurrency=1)
    board.hold("blocker", "first")
    queue.defer("job", {"name": "blocker"})
    await until(lambda: board.started == ["blocker"], "the blocker to start")

    assert queue.defer("job", {"name": "first"}, dedupe_key="k") is True
    # Waiting: refused (even with other arguments: the key decides).
    assert queue.defer("job", {"name": "first"}, dedupe_key="k") is False
    assert queue.defer("job", {"name": "other"}, dedupe_key="k") is False
    board.release("blocker")
    await until(lambda: "first" in board.started, "the first job to start")
    # Running: refused too.
    assert queue.defer("job", {"name": "first"}, dedupe_key="k") is False
    board.release("first")
    await drained(queue)
    assert board.runs == {"blocker": 1, "first": 1}

    # Finished: the key is free again.
    assert queue.defer("job", {"name": "first"}, dedupe_key="k") is True
    await drained(queue)
    assert board.runs["first"] == 2
    assert "other" not in board.runs


async def test_the_default_dedupe_key_is_the_task_and_its_arguments(
    board: Board, start_queue: StartQueue
) -> None:
    queue = await start_queue(concurrency=1)
    board.hold("a")
    assert queue.defer("job", {"name": "a", "group": "g"})
    assert not queue.defer("job", {"group": "g", "name": "a"})  # same arguments, any order
    assert queue.defer("job", {"name": "a", "group": "h"})  # other arguments: another job
    board.release("a")
    await drained(queue)
    assert board.runs == {"a": 2}


async def test_active_reflects_waiting_and_running_jobs(
    board: Board, start_queue: StartQueue
) -> None:
    queue = await start_queue(concurrency=1)
    board.hold("running", "waiting")
    assert not queue.active()
    queue.defer("job", {"name": "running", "group": "g1"})
    queue.defer("job", {"name": "waiting", "group": "g2"})
    await until(lambda: board.started == ["running"], "the first job to start")

    assert queue.active()
    assert queue.active("job")
    assert queue.active("job", name="running")  # running
    assert queue.active("job", name="waiting")  # waiting
    assert queue.active(name="waiting", group="g2")  # any task
    assert not queue.active(name="waiting", group="g1")  # every match must hold
    assert not queue.active("job", name="nobody")
    assert not queue.active("other_task")
    assert not queue.active("other_task", name="running")

    board.release("running")
    await until(lambda: "running" in board.finished, "the first job to finish")
    await until(lambda: not queue.active(name="running"), "the finished job to leave")
    assert queue.active("job", name="waiting")
    board.release("waiting")
    await drained(queue)
    assert not queue.active()
    assert not queue.active("job", name="waiting")


# -- threads, failures, periodic functions -------------------------------------------------


async def test_a_defer_from_another_thread_runs(board: Board, start_queue: StartQueue) -> None:
    queue = await start_queue(concurrency=2)
    await settle()  # every worker asleep with nothing due: only a wake-up can start a job
    deferred = await asyncio.to_thread(queue.defer, "job", {"name": "threaded"})
    assert deferred is True
    await until(lambda: "threaded" in board.finished, "the job deferred from a thread")
    # Several threads at once (sync endpoints in the thread pool).
    names = [f"t{i}" for i in range(10)]
    results = await asyncio.gather(
        *(asyncio.to_thread(queue.defer, "job", {"name": name}) for name in names)
    )
    assert all(results)
    await drained(queue)
    assert sorted(n for n in board.finished if n != "threaded") == sorted(names)


async def test_a_failing_job_is_logged_and_does_not_stop_the_queue(
    board: Board, start_queue: StartQueue, caplog: pytest.LogCaptureFixture
) -> None:
    queue = await start_queue(concurrency=1)

    async def boom(reason: str) -> None:
        raise RuntimeError(f"task exploded: {reason}")

    queue.register("boom", boom)
    caplog.set_level(logging.ERROR, logger="apexverify.jobs.inprocess")
    queue.defer("boom", {"reason": "first"})
    queue.defer("job", {"name": "after-first"})
    queue.defer("boom", {"reason": "second"})
    queue.defer("no_such_task", {"x": "1"})  # an unknown task fails the same way
    queue.defer("job", {"name": "after-second"})
    await drained(queue)

    assert board.finished == ["after-first", "after-second"]
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    messages = [r.getMessage() for r in failures]
    assert any("boom" in m and "first" in m for m in messages), messages
    assert any("boom" in m and "second" in m for m in messages), messages
    assert any("no_such_task" in m for m in messages), messages
    assert all(r.exc_info is not None for r in failures)  # with the traceback
    # The failed jobs left: their keys are free and nothing is active.
    assert not queue.active()
    assert queue.defer("boom", {"reason": "first"}) is True
    await drained(queue)


async def test_periodic_functions_run_and_survive_their_failures(
    start_queue: StartQueue, caplog: pytest.LogCaptureFixture
) -> None:
    calls = {"tick": 0, "flaky": 0}

    async def tick() -> None:
        calls["tick"] += 1

    async def flaky() -> None:
        calls["flaky"] += 1
        if calls["flaky"] % 2:
            raise RuntimeError("periodic hiccup")

    caplog.set_level(logging.ERROR, logger="apexverify.jobs.base")
    queue = await start_queue(
        concurrency=1,
        periodic=(Periodic("tick", 0.01, tick), Periodic("flaky", 0.01, flaky)),
    )
    await until(lambda: calls["tick"] >= 3, "the periodic function to run repeatedly")
    await until(lambda: calls["flaky"] >= 4, "the failing periodic function to go on")
    assert any("flaky failed" in r.getMessage() for r in caplog.records)
    await queue.stop()
    stopped = dict(calls)
    await settle()
    assert calls == stopped  # stop() ends the periodic loops too


async def test_periodic_functions_run_once_at_start(start_queue: StartQueue) -> None:
    calls: list[str] = []

    async def once() -> None:
        calls.append("ran")

    await start_queue(periodic=(Periodic("hourly", 3600, once),))
    await until(lambda: calls == ["ran"], "the first run at start")


# -- stop and drain ------------------------------------------------------------------------


async def test_stop_cancels_running_jobs(board: Board, start_queue: StartQueue) -> None:
    queue = await start_queue(concurrency=2)
    board.hold("stuck-1", "stuck-2")
    queue.defer("job", {"name": "stuck-1"})
    queue.defer("job", {"name": "stuck-2"})
    await until(lambda: board.running == {"stuck-1", "stuck-2"}, "both jobs to run")
    try:
        async with asyncio.timeout(TIMEOUT):
            await queue.stop()
    except TimeoutError:
        pytest.fail("stop() did not return")
    assert sorted(board.cancelled) == ["stuck-1", "stuck-2"]
    assert board.running == set()
    # A cancelled job is no longer running: its key is free for the next start.
    assert not queue.active("job", name="stuck-1")
    # Stopped: a new job waits for the next start instead of running.
    queue.defer("job", {"name": "after-stop"})
    await settle()
    assert "after-stop" not in board.started
    await queue.start()
    await drained(queue)
    assert board.finished[-1] == "after-stop"


async def test_drain_waits_until_no_job_is_waiting_or_running(
    board: Board, start_queue: StartQueue
) -> None:
    queue = await start_queue(concurrency=2)
    await drained(queue)  # idle: returns at once
    board.hold("slow")
    for name in ("slow", "a", "b", "c"):
        queue.defer("job", {"name": name}, lock="L")
    drain = asyncio.create_task(queue.drain())
    await until(lambda: board.started == ["slow"], "the first job to start")
    await settle()
    assert not drain.done()
    board.release("slow")
    try:
        async with asyncio.timeout(TIMEOUT):
            await drain
    except TimeoutError:
        pytest.fail("drain() did not return")
    assert board.finished == ["slow", "a", "b", "c"]
    assert not queue.active()


async def test_drain_waits_for_jobs_that_defer_jobs(board: Board, start_queue: StartQueue) -> None:
    queue = await start_queue(concurrency=2)

    async def fan_out(depth: int) -> None:
        if depth:
            queue.defer("fan_out", {"depth": depth - 1})
            queue.defer("job", {"name": f"leaf-{depth}"})

    queue.register("fan_out", fan_out)
    queue.defer("fan_out", {"depth": 5})
    await drained(queue)
    assert sorted(board.finished) == sorted(f"leaf-{d}" for d in range(1, 6))
