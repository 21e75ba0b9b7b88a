"""Verification split into chunk jobs, for the procrastinate runner.

``verify_batch(batch_uuid)`` fans out: in one transaction it reads the due unverified rows,
cuts them into ranges of ``verify_chunk_size`` and enqueues one ``verify_chunk(batch_uuid,
first_seq, last_seq)`` per range, so the enqueue commits or rolls back with the read it is
based on. Any worker on any machine takes chunks. After each chunk the worker checks, in a
new transaction that sees every committed chunk, whether rows are left: none -> ``finalize``
(a compare-and-set plus a unique ledger row, so racing workers refund once); rows waiting
for an engine retry (greylisting) -> a delayed ``verify_batch`` re-fans them out later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ..batches import parse_chunks, states
from ..batches.context import Services
from ..batches.parse_task import Superseded, fail_parse, parse_whole
from ..batches.verify_task import finalize, verify_range
from ..store import records
from ..store.models import Batch
from . import metrics
from .procrastinate_runner import ProcrastinateRunner

log = logging.getLogger(__name__)

_ACTIVE_CHUNKS = text(
    "SELECT 1 FROM procrastinate_jobs WHERE task_name = 'verify_chunk'"
    " AND status IN ('todo', 'doing') AND args->>'batch_uuid' = :u LIMIT 1"
)
# Existence, not a count: this runs after every chunk, so it must not scan the whole batch.
_ANY_LEFT = text(
    "SELECT 1 FROM records WHERE batch_pk = :b AND kind = 'valid' AND verdict IS NULL LIMIT 1"
)
_RANGE_RETRY = text(
    "SELECT COUNT(*), MIN(retry_at) FROM records WHERE batch_pk = :b AND kind = 'valid'"
    " AND verdict IS NULL AND seq BETWEEN :first AND :last"
)


def register(runner: ProcrastinateRunner, services: Services) -> None:
    register_parse(runner, services)

    async def verify_batch(batch_uuid: str) -> None:
        done = await asyncio.to_thread(fan_out, services, runner, batch_uuid)
        if done:
            await asyncio.to_thread(finalize, services, batch_uuid)

    async def verify_chunk(batch_uuid: str, first_seq: int, last_seq: int) -> None:
        try:
            await verify_range(services, batch_uuid, first_seq, last_seq)
        except Exception:
            metrics.CHUNKS.labels("failed").inc()  # the queue retries it with backoff
            raise
        metrics.CHUNKS.labels("done").inc()
        done = await asyncio.to_thread(
            after_chunk, services, runner, batch_uuid, first_seq, last_seq
        )
        if done:
            await asyncio.to_thread(finalize, services, batch_uuid)

    runner.register("verify_batch", verify_batch)
    runner.register("verify_chunk", verify_chunk)


def register_parse(runner: ProcrastinateRunner, services: Services) -> None:
    """``parse_batch`` parses a small upload itself and splits a large one into
    ``parse_chunk`` jobs (``batches/parse_chunks.py``); the last chunk finishes the batch."""

    def defer_chunk(session: Session, **job: object) -> None:
        # Default queueing lock = task + arguments: a re-plan never doubles a waiting chunk.
        runner.defer_in(session, "parse_chunk", lock=None, **job)

    async def guarded(batch_uuid: str, generation: int, work: Callable[[], object]) -> None:
        try:
            await asyncio.to_thread(work)
        except Superseded:
            log.info("parse of %s generation %d superseded", batch_uuid, generation)
        except OperationalError:
            raise  # the database blipped: the queue retries the job
        except Exception as exc:
            log.exception("parse of %s failed", batch_uuid)
            await asyncio.to_thread(fail_parse, services, batch_uuid, generation, exc)

    async def parse(batch_uuid: str, generation: int) -> None:
        def work() -> None:
            split = parse_chunks.plan_if_large(services, batch_uuid, generation, defer_chunk)
            if split is None:
                parse_whole(services, batch_uuid, generation)
            elif split:
                parse_chunks.finish(services, batch_uuid, generation)

        await guarded(batch_uuid, generation, work)

    async def parse_chunk(
        batch_uuid: str, generation: int, first_seq: int, start: int, end: int
    ) -> None:
        def work() -> None:
            args = (services, batch_uuid, generation)
            if parse_chunks.load_range(*args, first_seq, start, end):
                parse_chunks.finish(*args)

        await guarded(batch_uuid, generation, work)

    runner.register("parse_batch", parse)
    runner.register("parse_chunk", parse_chunk)


def _later(runner: ProcrastinateRunner, session: object, batch_uuid: str, at: int) -> None:
    # Its own queueing lock: the running verify_batch (or chunk) must not block it.
    runner.defer_in(
        session,  # type: ignore[arg-type]
        "verify_batch",
        lock=f"verify:{batch_uuid}",
        delay_seconds=max(at - time.time(), 0),
        qlock=f"verify_batch_later:{batch_uuid}",
        batch_uuid=batch_uuid,
    )


def fan_out(services: Services, runner: ProcrastinateRunner, batch_uuid: str) -> bool:
    """Enqueue the chunk jobs of a batch; True when nothing is left and it can finalize."""
    with services.store.write() as session:
        batch = session.query(Batch).filter(Batch.uuid == batch_uuid).one_or_none()
        if batch is None or batch.status != states.ONGOING:
            return False
        # Chunks still queued or running (e.g. a resume right after a restart): they finish
        # the batch; cutting new ranges now would only repeat their work.
        if session.execute(_ACTIVE_CHUNKS, {"u": batch_uuid}).first():
            return False
        ranges = records.due_ranges(session, batch.pk, services.settings.verify_chunk_size)
        for first, last in ranges:
            runner.defer_in(
                session,
                "verify_chunk",
                lock=None,
                batch_uuid=batch_uuid,
                first_seq=first,
                last_seq=last,
            )
        if ranges:
            return False
        at = records.next_retry_at(session, batch.pk)
        if at is None:
            return True
        _later(runner, session, batch_uuid, at)
        return False


def after_chunk(
    services: Services, runner: ProcrastinateRunner, batch_uuid: str, first: int, last: int
) -> bool:
    """After a chunk committed: True when the whole batch has no unverified row left."""
    with services.store.write() as session:
        batch = session.query(Batch).filter(Batch.uuid == batch_uuid).one_or_none()
        if batch is None or batch.status != states.ONGOING:
            return False
        if session.execute(_ANY_LEFT, {"b": batch.pk}).first() is None:
            return True
        left, at = session.execute(
            _RANGE_RETRY, {"b": batch.pk, "first": first, "last": last}
        ).one()
        if left:  # rows of this range the engine asked to retry later
            _later(runner, session, batch_uuid, int(at or 0))
        return False
