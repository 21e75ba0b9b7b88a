"""The process host (``jobs/process_host.py``): job bodies run in one child process that
builds its context once; results, exceptions and deferred jobs come back; a dead host is
replaced; ``stop`` ends it. Real processes (forkserver), no clock."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import psutil
import pytest

from apexverify.jobs.base import Job, JobQueue, Periodic
from apexverify.jobs.process_host import HostLost, ProcessHost
from tests.jobs import host_bodies

pytestmark = pytest.mark.fast


class Recorder(JobQueue):
    def __init__(self) -> None:
        super().__init__()
        self.jobs: list[Job] = []

    def submit(self, job: Job) -> bool:
        self.jobs.append(job)
        return True

    def active(self, task: str | None = None, **match: str) -> bool:
        return False

    async def start(self, periodic: tuple[Periodic, ...] = ()) -> None:
        return None

    async def stop(self) -> None:
        return None


@pytest.fixture
def queue() -> Recorder:
    return Recorder()


@pytest.fixture
def host(queue: Recorder) -> Iterator[ProcessHost[host_bodies.Context]]:
    made = ProcessHost("test", host_bodies.build, queue, host_bodies.release)
    yield made
    made.stop()


async def test_bodies_run_in_one_child_that_built_its_context_once(
    host: ProcessHost[host_bodies.Context],
) -> None:
    first = await host.run(host_bodies.where, "a")
    second = await host.run(host_bodies.where, "b")
    assert first["pid"] != os.getpid()
    assert first["pid"] == second["pid"] == first["built_in"]  # one process, one context
    assert (first["label"], second["label"]) == ("a", "b")
    assert (first["bodies"], second["bodies"]) == (1, 2)
    assert second["released_before"] == 1  # released after each body
    if hasattr(os, "getpriority"):
        assert int(first["niceness"]) > os.getpriority(os.PRIO_PROCESS, 0)


async def test_jobs_a_body_deferred_are_submitted_here_when_it_returns(
    host: ProcessHost[host_bodies.Context], queue: Recorder
) -> None:
    assert await host.run(host_bodies.defer_then, False) == "deferred"
    assert [job.args["delivery_id"] for job in queue.jobs] == [1, 2]


async def test_a_failed_body_raises_its_exception_here_after_its_jobs_are_submitted(
    host: ProcessHost[host_bodies.Context], queue: Recorder
) -> None:
    with pytest.raises(LookupError, match="after deferring"):
        await host.run(host_bodies.defer_then, True)
    assert [job.args["delivery_id"] for job in queue.jobs] == [1, 2]


async def test_an_exception_that_cannot_cross_comes_back_as_its_message(
    host: ProcessHost[host_bodies.Context],
) -> None:
    with pytest.raises(RuntimeError, match="Unpicklable: holds a lock"):
        await host.run(host_bodies.fail_unpicklably)


async def test_the_host_cannot_see_the_server_queue(
    host: ProcessHost[host_bodies.Context],
) -> None:
    with pytest.raises(RuntimeError, match="cannot see the server's queue"):
        await host.run(host_bodies.ask_active)


async def test_a_dead_host_raises_host_lost_and_the_next_body_gets_a_new_process(
    host: ProcessHost[host_bodies.Context],
) -> None:
    before = await host.run(host_bodies.where, "before")
    with pytest.raises(HostLost):
        await host.run(host_bodies.die)
    after = await host.run(host_bodies.where, "after")
    assert after["pid"] != before["pid"]
    assert after["bodies"] == 1  # a new context in the new process


async def test_stop_ends_the_process(host: ProcessHost[host_bodies.Context]) -> None:
    pid = int((await host.run(host_bodies.where, "x"))["pid"])
    host.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


async def test_bodies_run_side_by_side_in_the_host(
    host: ProcessHost[host_bodies.Context],
) -> None:
    """A long body (a parse) does not hold back the next (a verification's chunk)."""
    waited = asyncio.ensure_future(host.run(host_bodies.wait_for_partner))
    assert await host.run(host_bodies.set_partner) == "set"
    assert await waited is True


async def test_every_body_gets_an_answer_and_the_host_goes_on(
    host: ProcessHost[host_bodies.Context],
) -> None:
    """A body that exits, or returns what cannot cross, still answers its caller."""
    with pytest.raises(RuntimeError, match="ended with SystemExit"):
        await host.run(host_bodies.exit_the_body)
    with pytest.raises(RuntimeError, match="cannot be sent back"):
        await host.run(host_bodies.unpicklable_result)
    after = await host.run(host_bodies.where, "after")
    assert after["bodies"] == 1  # the same process: where ran once in it
