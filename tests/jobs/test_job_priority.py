"""Jobs of the in-process queue give way to the API: their ``asyncio.to_thread`` work runs in
threads at a lower scheduling priority, and what those threads start inherits it
(``jobs/inprocess.py``; Linux, where priorities are per thread)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading

import pytest

from apexverify.jobs.base import Job
from apexverify.jobs.inprocess import JOB_NICENESS, InProcessQueue

pytestmark = [
    pytest.mark.fast,
    pytest.mark.skipif(sys.platform != "linux", reason="per-thread priorities are Linux's"),
]


def _own_niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _child_niceness() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpriority(os.PRIO_PROCESS, 0))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


async def test_job_threads_and_their_children_run_below_the_event_loop() -> None:
    base = _own_niceness()
    if base + JOB_NICENESS > 19:
        pytest.skip("this test process already runs at the lowest priority")
    queue = InProcessQueue(concurrency=1)
    seen: asyncio.Queue[tuple[int, int]] = asyncio.Queue()

    async def probe() -> None:
        thread = await asyncio.to_thread(_own_niceness)
        child = await asyncio.to_thread(_child_niceness)
        await seen.put((thread, child))

    queue.register("probe", probe)
    await queue.start()
    try:
        queue.submit(Job("probe", {}))
        thread, child = await asyncio.wait_for(seen.get(), 20)
    finally:
        await queue.stop()
    assert thread == child == base + JOB_NICENESS
    assert _own_niceness() == base  # the event loop's thread keeps its priority
