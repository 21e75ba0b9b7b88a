"""``apexverify worker``: run procrastinate jobs, recover stalled ones, sweep for gaps.

Three loops share the event loop:

- procrastinate's worker, heartbeating every ``_HEARTBEAT`` seconds;
- stall recovery: jobs left ``doing`` by a worker whose heartbeat stopped (``kill -9``, lost
  machine) go back to ``todo`` for another worker; re-running a chunk is safe because results
  are written only onto rows that have none;
- the sweeper: a batch parsing or verifying with no active job gets its job deferred again.
  It closes the gap between an API commit and its enqueue (the API enqueues right after
  committing, not in the same transaction) and revives batches whose jobs gave up retrying.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import select, text

from ..batches import states, tasks
from ..batches.context import Services
from ..store.models import Batch
from .procrastinate_runner import QUEUE, ProcrastinateRunner

log = logging.getLogger(__name__)

_HEARTBEAT = 2.0
STALLED_AFTER = 10.0  # seconds without heartbeat before a worker's jobs are taken over
_RECOVER_EVERY = 3.0
_SWEEP_EVERY = 10.0

_ACTIVE_JOB = text(
    "SELECT 1 FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
    " AND args->>'batch_uuid' = :u LIMIT 1"
)


async def run_worker(services: Services, concurrency: int) -> None:
    runner = services.jobs
    assert isinstance(runner, ProcrastinateRunner)
    tasks.register(runner, services)
    async with runner.app.open_async():
        helpers = [
            asyncio.create_task(_recover_loop(runner)),
            asyncio.create_task(_sweep_loop(services, runner)),
        ]
        try:
            await runner.app.run_worker_async(
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


async def recover_stalled(runner: ProcrastinateRunner) -> int:
    manager = runner.app.job_manager
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


async def _recover_loop(runner: ProcrastinateRunner) -> None:
    while True:
        try:
            await recover_stalled(runner)
        except Exception:
            log.exception("stalled-job recovery failed")
        await asyncio.sleep(_RECOVER_EVERY)


def sweep(services: Services, runner: ProcrastinateRunner) -> int:
    """Defer the job of every unfinished batch that has none queued or running."""
    with services.store.read() as session:
        unfinished = session.execute(
            select(Batch.uuid, Batch.status, Batch.parse_generation).where(
                Batch.status.in_((states.PARSING, states.ONGOING))
            )
        ).all()
        idle = [
            row for row in unfinished if not session.execute(_ACTIVE_JOB, {"u": row[0]}).first()
        ]
    for batch_uuid, status, generation in idle:
        if status == states.PARSING:
            runner.defer(
                "parse_batch",
                lock=f"batch:{batch_uuid}",
                batch_uuid=batch_uuid,
                generation=generation,
            )
        else:
            runner.defer("verify_batch", lock=f"verify:{batch_uuid}", batch_uuid=batch_uuid)
    return len(idle)


async def _sweep_loop(services: Services, runner: ProcrastinateRunner) -> None:
    # First sweep at start-up: a cluster restarted after losing enqueues recovers at once.
    while True:
        try:
            revived = await asyncio.to_thread(sweep, services, runner)
            if revived:
                log.info("sweeper re-deferred %d batches", revived)
        except Exception:
            log.exception("sweep failed")
        await asyncio.sleep(_SWEEP_EVERY)
