"""The verification task: chunks of unverified records -> engine -> results, then the final
tally and refund.

The database is the truth. A chunk's results are written in one transaction together with the
progress counter, and only onto rows that have no verdict yet, so a chunk interrupted by a
crash is verified again but written once: exactly one result per record. The final step is a
compare-and-set on the batch status plus a ledger row unique per (batch, refund), so a batch
is refunded at most once however many workers race to finish it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from ..accounts import service as accounts
from ..credits import from_milli
from ..jobs import metrics
from ..store import records
from ..store.models import Account, Batch, utcnow
from ..verify.base import Outcome, Retry, Verifier, VerifyContext, VerifyItem
from ..verify.registry import build_verifier
from . import states
from .context import Services
from .params import BatchParameters
from .pricing import unknown_refund_milli

log = logging.getLogger(__name__)
_FAILURE_BACKOFF_CAP = 60.0


@dataclass(frozen=True)
class _Run:
    batch: Batch
    verifier: Verifier
    context: VerifyContext
    feeds_global: bool


async def _prepare(
    services: Services, batch_uuid: str, builder: Callable[..., Verifier]
) -> _Run | None:
    """The ongoing batch with an engine and context for it, or None if nothing is to do."""
    loaded = await asyncio.to_thread(_load, services, batch_uuid)
    if loaded is None:
        return None
    batch, account = loaded
    params = BatchParameters.model_validate(batch.parameters)
    return _Run(
        batch=batch,
        verifier=builder(
            params.type,
            services.settings,
            sandbox=account.sandbox,
            on_smtp_reply=metrics.count_smtp_reply,
        ),
        context=VerifyContext(
            target_country=params.target_country,
            max_attempts=services.settings.max_verify_attempts,
        ),
        # Sandbox verdicts are fabricated: they never feed the global cache.
        feeds_global=params.use_global_cache and not account.sandbox,
    )


async def verify_batch(services: Services, batch_uuid: str) -> None:
    run = await _prepare(services, batch_uuid, build_verifier)
    if run is None:
        return
    try:
        await _verify_all(services, run.batch, run.verifier, run.context, run.feeds_global)
    finally:
        await run.verifier.aclose()
    await asyncio.to_thread(finalize, services, batch_uuid)


async def verify_range(services: Services, batch_uuid: str, first_seq: int, last_seq: int) -> None:
    """One chunk job of a scaled-out verification: the due rows of ``first_seq..last_seq``.

    Engine errors propagate so the job queue retries the job; a re-run (retry, or a chunk
    taken over from a killed worker) only writes rows that still have no verdict."""
    # Chunks run on many workers: per-MX SMTP caps shared through Redis when configured.
    from ..jobs.mx_slots import build_verifier as build_shared_verifier

    run = await _prepare(services, batch_uuid, build_shared_verifier)
    if run is None:
        return
    batch, verifier, context = run.batch, run.verifier, run.context
    size = services.settings.verify_chunk_size
    cursor = first_seq - 1
    try:
        while True:
            chunk = await asyncio.to_thread(_claim, services, batch.pk, cursor, size, last_seq)
            if not chunk:
                return
            items = [VerifyItem(r.normalized, r.attempts + 1) for r in chunk]
            outcomes = await verifier.verify_many(items, context)
            await asyncio.to_thread(_store, services, batch, chunk, outcomes, run.feeds_global)
            cursor = chunk[-1].seq
    finally:
        await verifier.aclose()


def _load(services: Services, batch_uuid: str) -> tuple[Batch, Account] | None:
    with services.store.read() as session:
        batch = session.query(Batch).filter(Batch.uuid == batch_uuid).one_or_none()
        if batch is None or batch.status != states.ONGOING:
            return None
        account = session.get(Account, batch.account_id)
        assert account is not None
        return batch, account


async def _verify_all(
    services: Services, batch: Batch, verifier: Any, context: VerifyContext, feeds_global: bool
) -> None:
    """Passes over the due rows until none is left. A failed pass (engine error) is retried
    with backoff; rows an engine asked to retry later are picked up by a later pass."""
    failures = 0
    while True:
        if await _one_pass(services, batch, verifier, context, feeds_global):
            failures = 0
        else:
            failures += 1
            delay = min(2.0**failures, _FAILURE_BACKOFF_CAP)
            log.warning("verification of %s: a chunk failed; next pass in %.0fs", batch.uuid, delay)
            await asyncio.sleep(delay)
            continue
        wait = await asyncio.to_thread(_seconds_until_retry, services, batch.pk)
        if wait is None:
            return
        await asyncio.sleep(min(max(wait, 0.05), 5.0))


async def _one_pass(
    services: Services, batch: Batch, verifier: Any, context: VerifyContext, feeds_global: bool
) -> bool:
    """Claim the due rows in file order, chunk after chunk, with up to
    ``verify_parallel_chunks`` chunks in flight: a slow mail host in one chunk does not hold
    up the next. Returns False when a chunk failed (its rows stay due for the next pass,
    which starts only once every chunk of this one is stored, so no row is claimed twice)."""
    size = services.settings.verify_chunk_size
    width = max(1, services.settings.verify_parallel_chunks)
    cursor, exhausted, ok = -1, False, True
    in_flight: set[asyncio.Task[None]] = set()

    async def verify_and_store(chunk: list[records.PendingRecord]) -> None:
        items = [VerifyItem(r.normalized, r.attempts + 1) for r in chunk]
        outcomes = await verifier.verify_many(items, context)
        await asyncio.to_thread(_store, services, batch, chunk, outcomes, feeds_global)

    try:
        while in_flight or not exhausted:
            if not exhausted and len(in_flight) < width:
                chunk = await asyncio.to_thread(_claim, services, batch.pk, cursor, size)
                if chunk:
                    cursor = chunk[-1].seq
                    in_flight.add(asyncio.create_task(verify_and_store(chunk)))
                else:
                    exhausted = True
                continue
            done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is not None:
                    # Claim nothing more: a broken engine or resolver would otherwise fail
                    # its way through the whole batch before the backoff.
                    ok, exhausted = False, True
                    log.error(
                        "verification chunk of %s failed", batch.uuid, exc_info=task.exception()
                    )
    finally:
        for task in in_flight:  # cancelled (shutdown): unfinished chunks stay due
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
    return ok


def _claim(
    services: Services, batch_pk: int, cursor: int, size: int, until: int | None = None
) -> list[records.PendingRecord]:
    with services.store.read() as session:
        return records.claim_chunk(session, batch_pk, cursor, size, until)


def _seconds_until_retry(services: Services, batch_pk: int) -> float | None:
    with services.store.read() as session:
        at = records.next_retry_at(session, batch_pk)
    return None if at is None else at - time.time()


def _store(
    services: Services,
    batch: Batch,
    chunk: list[records.PendingRecord],
    outcomes: list[Outcome],
    feeds_global: bool,
) -> None:
    if len(outcomes) != len(chunk):
        raise RuntimeError("engine returned a different number of outcomes than items")
    now = int(time.time())
    finals: list[tuple[int, str, dict[str, Any], int]] = []
    retries: list[tuple[int, int, int]] = []
    cacheable: list[tuple[bytes, str, dict[str, Any]]] = []
    for record, outcome in zip(chunk, outcomes, strict=True):
        attempts = record.attempts + 1
        if isinstance(outcome, Retry):
            retries.append((record.id, now + max(int(outcome.after_seconds), 1), attempts))
            continue
        data = outcome.to_dict()
        finals.append((record.id, outcome.verdict, data, attempts))
        if outcome.verdict != "unknown":  # only conclusive verdicts are worth reusing
            cacheable.append((record.key_hash, outcome.verdict, data))
    with services.store.write() as session:
        written = records.write_results(session, finals)
        records.schedule_retries(session, retries)
        records.upsert_cache(session, batch.account_id, batch.record_type, cacheable)
        if feeds_global:
            records.upsert_cache(session, records.GLOBAL_SCOPE, batch.record_type, cacheable)
        if written:
            session.execute(
                update(Batch)
                .where(Batch.pk == batch.pk)
                .values(verified=Batch.verified + written, updated_at=utcnow())
            )
    for _rid, verdict, _data, _n in finals:
        metrics.count_result(batch.record_type, verdict)
    if retries:
        metrics.RECORDS_RETRIED.labels(batch.record_type).inc(len(retries))


def finalize(services: Services, batch_uuid: str) -> None:
    """Tally, refund and mark done; a no-op unless the batch is ongoing with nothing left."""
    with services.store.write() as session:
        batch = session.query(Batch).filter(Batch.uuid == batch_uuid).one_or_none()
        if batch is None or batch.status != states.ONGOING:
            return
        if records.next_retry_at(session, batch.pk) is not None:
            return
        records.copy_results_to_duplicates(session, batch.pk)
        counts = records.verdict_counts(session, batch.pk)
        refund = min(
            unknown_refund_milli(services.settings, batch.record_type, counts["fresh_unknown"]),
            batch.charged_milli,
        )
        done = session.execute(
            update(Batch)
            .where(Batch.pk == batch.pk, Batch.status == states.ONGOING)
            .values(
                status=states.DONE,
                stats=_stats(counts, batch.duplicate_count),
                refunded_milli=refund,
                finished_at=utcnow(),
                updated_at=utcnow(),
            )
        ).rowcount
        if done and refund:
            _refund(session, batch, refund)


def _refund(session: Session, batch: Batch, amount: int) -> None:
    accounts.move_credits(
        session,
        batch.account_id,
        batch.record_type,
        amount,
        kind="refund",
        note=f"refund of {from_milli(amount)} credits for inconclusive results",
        batch_uuid=batch.uuid,
    )


def _stats(counts: dict[str, int], duplicates: int) -> dict[str, Any]:
    total = counts["total"]

    def perc(n: int) -> float:
        return round(100.0 * n / total, 2) if total else 0.0

    return {
        "total_verification": total,
        "total_verification_valid": counts["valid"],
        "total_verification_wrong": counts["wrong"],
        "total_verification_unknown": counts["unknown"],
        "total_verification_duplicate": duplicates,
        "total_verification_account_cache": counts["account_cache"],
        "total_verification_global_cache": counts["global_cache"],
        "total_verification_valid_perc": perc(counts["valid"]),
        "total_verification_wrong_perc": perc(counts["wrong"]),
        "total_verification_unknown_perc": perc(counts["unknown"]),
        "total_verification_account_cache_perc": perc(counts["account_cache"]),
        "total_verification_global_cache_perc": perc(counts["global_cache"]),
    }
