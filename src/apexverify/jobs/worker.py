"""``apexverify worker``'s loop: run procrastinate jobs and recover those of dead workers.

Beside procrastinate's worker (heartbeating every ``_HEARTBEAT`` seconds) run stall recovery
(jobs left ``doing`` by a worker whose heartbeat stopped after ``kill -9`` or a lost machine
go back to ``todo``; the tasks are idempotent, so a re-run is safe) and the periodic functions
the features hand in (the batches feature's sweep).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .base import Periodic, run_every
from .procrastinate_queue import QUEUE, ProcrastinateQueue

log = logging.getLogger(__name__)

_HEARTBEAT = 2.0
STALLED_AFTER = 10.0  # seconds without heartbeat before a worker's jobs are taken over
_RECOVER_EVERY = 3.0


async def run_worker(
    queue: ProcrastinateQueue, concurrency: int, periodic: tuple[Periodic, ...] = ()
) -> None:
    async with queue.app.open_async():
        recovery = Periodic("stall recovery", _RECOVER_EVERY, lambda: recover_stalled(queue))
        helpers = [asyncio.create_task(run_every(p)) for p in (recovery, *periodic)]
        try:
            await queue.app.run_worker_async(
                queues=[QUEUE],
                concurrency=concurrency,
                update_heartbeat_interval=_HEARTBEAT,
                stalled_worker_timeout=STALLED_AFTER,
                delete_jobs="successful",
                install_signal_handlers=True,
            )
        finally:
            for helper in helpers:
                helper.cancel()
            for helper in helpers:
                with contextlib.suppress(asyncio.CancelledError):
                    await helper


async def recover_stalled(queue: ProcrastinateQueue) -> int:
    manager = queue.app.job_manager
    stalled = list(await manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_AFTER))
    retried = 0
    for job in stalled:
        try:
            await manager.retry_job(job)
            retried += 1
        except Exception:  # another worker retried it first
            log.debug("stalled job %s already handled", job.id, exc_info=True)
    if retried:
        log.warning("retried %d jobs of stalled workers", retried)
    return retried
