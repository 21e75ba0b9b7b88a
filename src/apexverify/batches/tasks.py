"""Background work of the batches feature, registered on whichever job runner runs."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from ..jobs.base import JobRunner
from ..store.models import Batch
from . import states
from .context import Services
from .parse_task import parse_batch
from .verify_task import verify_batch


def register(runner: JobRunner, services: Services) -> None:
    async def parse(batch_uuid: str, generation: int) -> None:
        await parse_batch(services, batch_uuid, generation)

    async def verify(batch_uuid: str) -> None:
        await verify_batch(services, batch_uuid)

    if runner.distributed:
        # Scaled out: large parses and every verification fan out into chunk jobs shared by
        # every worker.
        from ..jobs import scaleout_tasks
        from ..jobs.procrastinate_runner import ProcrastinateRunner

        assert isinstance(runner, ProcrastinateRunner)
        scaleout_tasks.register(runner, services)
    else:
        runner.register("parse_batch", parse)
        runner.register("verify_batch", verify)


async def resume_all(services: Services) -> int:
    """Re-defer the work of every batch left parsing or verifying (after a restart or a
    ``kill -9``). Returns how many batches were resumed."""

    def unfinished() -> list[tuple[str, str, int]]:
        with services.store.read() as session:
            rows = session.execute(
                select(Batch.uuid, Batch.status, Batch.parse_generation).where(
                    Batch.status.in_((states.PARSING, states.ONGOING))
                )
            )
            return [tuple(r) for r in rows]  # type: ignore[misc]

    batches = await asyncio.to_thread(unfinished)
    for batch_uuid, status, generation in batches:
        if status == states.PARSING:
            services.jobs.defer(
                "parse_batch",
                lock=f"batch:{batch_uuid}",
                batch_uuid=batch_uuid,
                generation=generation,
            )
        else:
            services.jobs.defer("verify_batch", lock=f"verify:{batch_uuid}", batch_uuid=batch_uuid)
    return len(batches)
