"""Every background task of the batches feature, for both queues (in-process and
procrastinate): the same bodies, names, locks and retry policy whichever runs them.

    parse_batch(batch_uuid, generation)           parse an upload (a large one, when scaled
                                                  out: plan parse_chunk jobs)
    parse_chunk(batch_uuid, generation, ...)      load one byte range; the last one publishes
    verify_batch(batch_uuid)                      fan out the due rows as verify_chunk jobs,
                                                  or finalize when none is left
    verify_chunk(batch_uuid, ids)                 verify one chunk of rows (cut by mail
                                                  domain for emails)
    sweep (periodic)                              re-defer the work of every batch that is
                                                  parsing or verifying with no job (restart,
                                                  kill -9, a job that gave up)

Each task takes an ``attempt`` number: a failure that may pass re-defers the task with the
next attempt after ``RetryPolicy.delay``; one that cannot, or the last attempt, ends the
batch in ``internal_error`` (refunded when launched). Arguments are IDs; each task reloads
what it needs, so re-running one is always safe.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.orm import Session

from .. import metrics
from ..jobs.base import JobQueue, Periodic
from ..verify.base import EngineUnavailable
from ..verify.sandbox import SandboxVerifier
from ..webhooks import tasks as webhook_tasks
from . import parse, parse_chunks, states, verification
from .context import Services
from .params import BatchParameters
from .repository import batches as batch_rows
from .repository import records
from .retry import parse_failure_may_pass, verify_failure_may_pass

log = logging.getLogger(__name__)

PARSE_BATCH = "parse_batch"
PARSE_CHUNK = "parse_chunk"
VERIFY_BATCH = "verify_batch"
VERIFY_CHUNK = "verify_chunk"
SWEEP_SECONDS = 10.0
# After a chunk asked for retries, the batch is looked at again at most this much later.
STALL_CHECK_SECONDS = 15.0
# Parses come before verification chunks: a new upload is not stuck behind a long batch.
PARSE_PRIORITY, VERIFY_PRIORITY = 10, 0


def parse_lock(batch_uuid: str) -> str:
    return f"batch:{batch_uuid}"


def verify_lock(batch_uuid: str) -> str:
    return f"verify:{batch_uuid}"


def defer_parse(
    services: Services,
    session: Session | None,
    batch_uuid: str,
    generation: int,
    attempt: int = 1,
    run_at: float | None = None,
) -> None:
    """Enqueue a parse, in ``session``'s transaction when given."""
    _defer(
        services.queue,
        session,
        PARSE_BATCH,
        {"batch_uuid": batch_uuid, "generation": generation, "attempt": attempt},
        lock=parse_lock(batch_uuid),
        priority=PARSE_PRIORITY,
        run_at=run_at,
    )


def defer_verify(
    services: Services, session: Session | None, batch_uuid: str, run_at: float | None = None
) -> None:
    """Enqueue the fan-out of a batch's due rows; a delayed one (greylisting retries) has a
    dedupe key of its own, so the running fan-out or chunk does not swallow it. The key
    names the second it is due: a fan-out already waiting for a later time must not swallow
    an earlier one (a greylisted row due in 2 s behind a stall check due in 15)."""
    _defer(
        services.queue,
        session,
        VERIFY_BATCH,
        {"batch_uuid": batch_uuid},
        lock=verify_lock(batch_uuid),
        dedupe_key=f"verify_batch_later:{batch_uuid}:{math.ceil(run_at)}" if run_at else None,
        run_at=run_at,
        priority=VERIFY_PRIORITY,
    )


def _defer(
    queue: JobQueue, session: Session | None, task: str, args: dict[str, Any], **options: Any
) -> None:
    if session is None:
        queue.defer(task, args, **options)
    else:
        queue.defer_with(session, task, args, **options)


# -- parse ---------------------------------------------------------------------------------


async def parse_batch(
    services: Services, batch_uuid: str, generation: int, attempt: int = 1
) -> None:
    def work() -> None:
        batch, _account, _params = parse.current_parse(services, batch_uuid, generation)
        if services.queue.distributed and parse_chunks.is_large(services, batch):
            if parse_chunks.plan(
                services, batch_uuid, generation, _chunk_deferrer(services, batch_uuid, generation)
            ):
                parse_chunks.finish(services, batch_uuid, generation)
        else:
            parse.parse_whole(services, batch_uuid, generation)

    host = services.host
    if host is None:
        await _guarded_parse(
            services, batch_uuid, generation, attempt, lambda: asyncio.to_thread(work)
        )
        return

    # Embedded server (never distributed): the whole parse in the job process.
    def hosted() -> Awaitable[None]:
        return host.run(parse.parse_whole, batch_uuid, generation)

    await _guarded_parse(services, batch_uuid, generation, attempt, hosted)


async def parse_chunk(
    services: Services,
    batch_uuid: str,
    generation: int,
    first_seq: int,
    start: int,
    end: int,
    attempt: int = 1,
) -> None:
    def work() -> None:
        if parse_chunks.load_range(services, batch_uuid, generation, first_seq, start, end):
            parse_chunks.finish(services, batch_uuid, generation)

    await _guarded_parse(services, batch_uuid, generation, attempt, lambda: asyncio.to_thread(work))


def _chunk_deferrer(
    services: Services, batch_uuid: str, generation: int
) -> parse_chunks.DeferChunk:
    def defer(session: Session, *, first_seq: int, start: int, end: int) -> None:
        args = {
            "batch_uuid": batch_uuid,
            "generation": generation,
            "first_seq": first_seq,
            "start": start,
            "end": end,
        }
        # Dedupe key without the attempt: a re-plan never doubles a waiting chunk.
        key = f"{PARSE_CHUNK}:{batch_uuid}:{generation}:{first_seq}"
        services.queue.defer_with(
            session, PARSE_CHUNK, {**args, "attempt": 1}, dedupe_key=key, priority=PARSE_PRIORITY
        )

    return defer


async def _guarded_parse(
    services: Services,
    batch_uuid: str,
    generation: int,
    attempt: int,
    work: Callable[[], Awaitable[None]],
) -> None:
    try:
        await work()
    except parse.Superseded:
        log.info("parse of %s generation %d superseded", batch_uuid, generation)
    except Exception as exc:
        again = services.retry.next_run_at(attempt) if parse_failure_may_pass(exc) else None
        if again is not None:
            log.warning(
                "parse of %s failed (%s); attempt %d at +%.0fs",
                batch_uuid,
                type(exc).__name__,
                attempt + 1,
                services.retry.delay(attempt),
            )
            # The whole parse again: a re-planned chunked parse keeps the ranges done.
            defer_parse(services, None, batch_uuid, generation, attempt + 1, run_at=again)
            return
        log.exception("parse of %s failed", batch_uuid)
        await asyncio.to_thread(
            parse.fail_parse, services, batch_uuid, generation, type(exc).__name__
        )


# -- verify --------------------------------------------------------------------------------


async def verify_batch(services: Services, batch_uuid: str) -> None:
    """Fan out: one verify_chunk job per ``verify_chunk_size`` due rows, enqueued in the
    transaction that read them; finalize when nothing is left."""
    step = await asyncio.to_thread(_fan_out, services, batch_uuid)
    if step == 0:
        await asyncio.to_thread(verification.finalize, services, batch_uuid)
    elif isinstance(step, verification.Waiting):
        if step.expired:
            await asyncio.to_thread(_end_stalled, services, batch_uuid, step.reason)
        else:
            defer_verify(services, None, batch_uuid, run_at=step.until)


def _end_stalled(services: Services, batch_uuid: str, reason: str) -> None:
    deadline = services.settings.stall_deadline_seconds
    ended = verification.end_rest(
        services,
        batch_uuid,
        reason=f"no progress for {deadline:.0f}s: {reason}",
        evidence="stalled",
        cancelled=False,
    )
    if ended is not None:
        log.warning(
            "verification of %s ended after a stall of %.0fs: %d records unknown, refunded",
            batch_uuid,
            deadline,
            ended,
        )


def _fan_out(services: Services, batch_uuid: str) -> float | verification.Waiting | None:
    if services.queue.active(VERIFY_CHUNK, batch_uuid=batch_uuid):
        return None  # chunks still queued or running finish the batch; new ones would repeat them
    with services.store.write() as session:
        batch = batch_rows.by_uuid(session, batch_uuid)
        if batch is None or batch.status != states.ONGOING:
            return None
        if verification.stall_expired(services, batch):
            reason = batch.stall_reason or "records wait for a retry"
            return verification.Waiting(time.time(), expired=True, reason=reason)
        params = BatchParameters.model_validate(batch.parameters)
        sandbox = batch_rows.owner(session, batch).sandbox
        engine = services.engines.build(params.type, sandbox=sandbox)
        size = engine.chunk_size(services.settings.verify_chunk_size)
        if isinstance(engine, SandboxVerifier):  # verdicts cost nothing: bigger chunks
            size = engine.batch_chunk_size(size, records.unverified_count(session, batch.pk))
        chunks = 0
        for ids in records.due_chunks(session, batch.pk, size, by_domain=engine.groups_by_domain):
            _defer_chunk(services, session, batch_uuid, ids, attempt=1)
            chunks += 1
    if chunks:
        log.info("verification of %s: %d chunk jobs", batch_uuid, chunks)
        return None
    return verification.next_step(services, batch_uuid)


def _defer_chunk(
    services: Services,
    session: Session | None,
    batch_uuid: str,
    ids: list[int],
    *,
    attempt: int,
    run_at: float | None = None,
) -> None:
    # A short dedupe key: the ids themselves would make procrastinate's queueing-lock index
    # entry too large.
    digest = hashlib.blake2b(repr(ids).encode(), digest_size=8).hexdigest()
    _defer(
        services.queue,
        session,
        VERIFY_CHUNK,
        {"batch_uuid": batch_uuid, "ids": ids, "attempt": attempt},
        dedupe_key=f"{VERIFY_CHUNK}:{batch_uuid}:{digest}:{attempt}",
        run_at=run_at,
        priority=VERIFY_PRIORITY,
    )


async def verify_chunk(
    services: Services, batch_uuid: str, ids: list[int], attempt: int = 1
) -> None:
    run = await asyncio.to_thread(verification.open_run, services, batch_uuid)
    if run is None:
        return
    try:
        retry_at = await verification.verify_chunk(services, run, ids)
    except Exception as exc:
        metrics.CHUNKS.labels("failed").inc()
        await _chunk_failed(services, batch_uuid, ids, attempt, exc)
        return
    metrics.CHUNKS.labels("done").inc()
    if retry_at is not None:  # rows of this chunk the engine asked to retry later
        # Look again soon even when the retry is far off: if nothing else is due by then, the
        # fan-out marks the batch stalled (visible in its status) instead of staying silent.
        soon = time.time() + STALL_CHECK_SECONDS
        defer_verify(services, None, batch_uuid, run_at=min(retry_at, soon))
    elif await asyncio.to_thread(verification.nothing_left, services, batch_uuid):
        await asyncio.to_thread(verification.finalize, services, batch_uuid)
    else:
        # Other rows wait for retries due after the fan-out that deferred this chunk (the
        # delayed fan-out a chunk defers is consumed by the first retry time): once this
        # pass's chunks are done, a fan-out finds the next one (next_step). At most one a
        # second per batch (the dedupe key), a no-op while other chunks still run.
        defer_verify(services, None, batch_uuid, run_at=time.time() + 1)


async def _chunk_failed(
    services: Services, batch_uuid: str, ids: list[int], attempt: int, exc: Exception
) -> None:
    again = services.retry.next_run_at(attempt) if verify_failure_may_pass(exc) else None
    if again is None:
        reason = (
            str(exc)
            if isinstance(exc, EngineUnavailable)
            else f"the engine failed {attempt} times ({type(exc).__name__})"
        )
        log.error("verification of %s: %s", batch_uuid, reason, exc_info=exc)
        await asyncio.to_thread(verification.fail, services, batch_uuid, reason)
        return
    log.warning(
        "verification of %s: a chunk of %d failed (%s); attempt %d at +%.0fs",
        batch_uuid,
        len(ids),
        type(exc).__name__,
        attempt + 1,
        services.retry.delay(attempt),
    )
    reason = f"the engine failed ({type(exc).__name__}); attempt {attempt + 1} follows"
    await asyncio.to_thread(_note_stall, services, batch_uuid, reason, again)
    _defer_chunk(services, None, batch_uuid, ids, attempt=attempt + 1, run_at=again)


def _note_stall(services: Services, batch_uuid: str, reason: str, until: float) -> None:
    with services.store.write() as session:
        batch = batch_rows.by_uuid(session, batch_uuid)
        if batch is not None:
            batch_rows.mark_stalled(session, batch.pk, int(until), reason=reason)


# -- sweep ---------------------------------------------------------------------------------


def sweep(services: Services) -> int:
    """Re-defer the work of every batch parsing or verifying with no job waiting or running.
    Returns how many batches were revived."""
    with services.store.read() as session:
        unfinished = batch_rows.with_status(session, states.UNFINISHED)
    revived = 0
    for batch_uuid, status, generation in unfinished:
        if services.queue.active(batch_uuid=batch_uuid):
            continue
        if status == states.PARSING:
            defer_parse(services, None, batch_uuid, generation)
        else:
            defer_verify(services, None, batch_uuid)
        revived += 1
    if revived:
        log.info("sweeper re-deferred %d batches", revived)
    return revived


def register(services: Services) -> tuple[Periodic, ...]:
    """Register every task on the services' queue, the webhook deliveries the transitions
    record included; returns the periodic functions the executing process runs
    (``JobQueue.start`` / the worker)."""
    queue = services.queue

    async def run_parse_batch(batch_uuid: str, generation: int, attempt: int = 1) -> None:
        await parse_batch(services, batch_uuid, generation, attempt)

    async def run_parse_chunk(
        batch_uuid: str, generation: int, first_seq: int, start: int, end: int, attempt: int = 1
    ) -> None:
        await parse_chunk(services, batch_uuid, generation, first_seq, start, end, attempt)

    async def run_verify_batch(batch_uuid: str) -> None:
        await verify_batch(services, batch_uuid)

    async def run_verify_chunk(batch_uuid: str, ids: list[int], attempt: int = 1) -> None:
        await verify_chunk(services, batch_uuid, ids, attempt)

    async def run_sweep() -> None:
        await asyncio.to_thread(sweep, services)

    queue.register(PARSE_BATCH, run_parse_batch)
    queue.register(PARSE_CHUNK, run_parse_chunk)
    queue.register(VERIFY_BATCH, run_verify_batch)
    queue.register(VERIFY_CHUNK, run_verify_chunk)
    webhook_periodic = webhook_tasks.register(services)
    return (Periodic("batches sweep", SWEEP_SECONDS, run_sweep), *webhook_periodic)
