"""Verification of a launched batch: due rows -> engine -> results, then the tally and refund.

The database is the truth. A chunk's results are written in one transaction together with the
progress counter, and only onto rows that have no verdict yet, so a chunk interrupted by a
crash is verified again but written once: exactly one result per record. The end of a batch
(``finalize`` when nothing is left, ``fail`` when the engine cannot go on) is a compare-and-set
on the status plus a ledger row unique per (batch, refund), so a batch is settled once however
many workers race to end it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from .. import metrics
from ..accounts import service as accounts
from ..credits import from_milli
from ..store.models import Account, Batch, utcnow
from ..verify.base import Outcome, Retry, Verifier, VerifyContext, VerifyItem
from . import policy, states
from .context import Services
from .params import BatchParameters
from .repository import batches as batch_rows
from .repository import caches, records

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run:
    """An ongoing batch with its engine and the rules that apply to it."""

    batch: Batch
    account: Account
    verifier: Verifier
    context: VerifyContext
    cache: policy.CachePolicy


def open_run(services: Services, batch_uuid: str) -> Run | None:
    """The ongoing batch ready to verify, or None when there is nothing to do."""
    with services.store.read() as session:
        batch = batch_rows.by_uuid(session, batch_uuid)
        if batch is None or batch.status != states.ONGOING:
            return None
        account = batch_rows.owner(session, batch)
    params = BatchParameters.model_validate(batch.parameters)
    return Run(
        batch=batch,
        account=account,
        verifier=services.engines.build(params.type, sandbox=account.sandbox),
        context=VerifyContext(
            target_country=params.target_country,
            max_attempts=services.settings.max_verify_attempts,
        ),
        cache=policy.cache_policy(account, params),
    )


async def verify_chunk(services: Services, run: Run, ids: Sequence[int]) -> int | None:
    """Verify the rows of one chunk that are still due; returns when the earliest of those an
    engine asked to retry later is due (None: every row got its verdict). Engine errors
    propagate: the caller's retry policy decides what happens to the chunk."""
    chunk = await asyncio.to_thread(_claim, services, run.batch.pk, ids)
    if not chunk:
        return None
    items = [VerifyItem(r.normalized, r.attempts + 1) for r in chunk]
    outcomes = await run.verifier.verify_many(items, run.context)
    return await asyncio.to_thread(store, services, run, chunk, outcomes)


def _claim(services: Services, batch_pk: int, ids: Sequence[int]) -> list[records.PendingRecord]:
    with services.store.read() as session:
        return records.claim_ids(session, batch_pk, ids)


def store(
    services: Services, run: Run, chunk: list[records.PendingRecord], outcomes: list[Outcome]
) -> int | None:
    """One chunk's outcomes in one transaction: final results, retry times, cache entries and
    the progress counter. Returns the earliest retry time scheduled, if any."""
    if len(outcomes) != len(chunk):
        raise RuntimeError("engine returned a different number of outcomes than items")
    now = int(time.time())
    finals: list[tuple[int, str, dict[str, Any], int]] = []
    retries: list[tuple[int, int, int]] = []
    cacheable: list[caches.CacheEntry] = []
    for record, outcome in zip(chunk, outcomes, strict=True):
        attempts = record.attempts + 1
        if isinstance(outcome, Retry):
            retries.append((record.id, now + max(int(outcome.after_seconds), 1), attempts))
            continue
        data = outcome.to_dict()
        finals.append((record.id, outcome.verdict, data, attempts))
        if outcome.verdict != "unknown":  # only conclusive verdicts are worth reusing
            cacheable.append((record.key_hash, outcome.verdict, data))
    batch = run.batch
    with services.store.write() as session:
        written = records.write_results(session, finals)
        records.schedule_retries(session, retries)
        for scope in run.cache.writes:
            caches.upsert(session, scope, batch.record_type, cacheable)
        if written:
            batch_rows.add_verified(session, batch.pk, written)
    for _rid, verdict, _data, _n in finals:
        metrics.count_result(batch.record_type, verdict)
    if retries:
        metrics.RECORDS_RETRIED.labels(batch.record_type).inc(len(retries))
        return min(at for _rid, at, _n in retries)
    return None


def next_step(services: Services, batch_uuid: str) -> float | None:
    """After a fan-out that found no due row: 0 when the batch can be finalized, the epoch
    time at which the earliest waiting row is due, or None (nothing to do here)."""
    with services.store.read() as session:
        batch = batch_rows.by_uuid(session, batch_uuid)
        if batch is None or batch.status != states.ONGOING:
            return None
        at = records.next_retry_at(session, batch.pk)
        return 0 if at is None else float(max(at, 1))


def nothing_left(services: Services, batch_uuid: str) -> bool:
    """Is the ongoing batch without any row still waiting for a verdict? (An index lookup:
    it runs after every chunk.)"""
    with services.store.read() as session:
        batch = batch_rows.by_uuid(session, batch_uuid)
        return (
            batch is not None
            and batch.status == states.ONGOING
            and not records.any_unverified(session, batch.pk)
        )


def finalize(services: Services, batch_uuid: str) -> bool:
    """Tally, refund inconclusive results and mark done; a no-op unless the batch is ongoing
    with nothing left to verify."""
    with services.store.write() as session:
        batch = batch_rows.by_uuid(session, batch_uuid)
        if batch is None or batch.status != states.ONGOING:
            return False
        if records.any_unverified(session, batch.pk):
            return False
        records.copy_results_to_duplicates(session, batch.pk)
        counts = records.verdict_counts(session, batch.pk)
        refund = min(
            policy.unknown_refund_milli(
                services.settings, batch.record_type, counts["fresh_unknown"]
            ),
            batch.charged_milli,
        )
        return _settle(session, batch, states.DONE, counts, refund)


def fail(services: Services, batch_uuid: str, reason: str) -> bool:
    """End an ongoing batch in ``internal_error``: the records verified so far keep their
    results; every record not verified (and, under the refund policy, every inconclusive one)
    is refunded."""
    with services.store.write() as session:
        batch = batch_rows.by_uuid(session, batch_uuid)
        if batch is None or batch.status != states.ONGOING:
            return False
        counts = records.verdict_counts(session, batch.pk)
        refund = min(
            policy.unverified_refund_milli(
                services.settings, batch.record_type, counts["unverified"]
            )
            + policy.unknown_refund_milli(
                services.settings, batch.record_type, counts["fresh_unknown"]
            ),
            batch.charged_milli,
        )
        message = (
            f"Verification stopped: {reason}. {counts['total']} records were verified; the "
            f"{counts['unverified']} not verified were refunded. Contact support with the "
            "batch_uuid."
        )
        settled = _settle(session, batch, states.ERROR, counts, refund, error_message=message)
    if settled:
        log.error("verification of %s failed: %s", batch_uuid, reason)
    return settled


def _settle(
    session: Session,
    batch: Batch,
    to: states.BatchStatus,
    counts: dict[str, int],
    refund: int,
    **values: Any,
) -> bool:
    try:
        states.transition(
            session,
            batch,
            states.ONGOING,
            to,
            stats=_stats(counts, batch.duplicate_count),
            refunded_milli=refund,
            finished_at=utcnow(),
            **values,
        )
    except states.TransitionLost:
        return False  # another worker settled it first
    if refund:
        why = "inconclusive results" if to == states.DONE else "records not verified"
        accounts.move_credits(
            session,
            batch.account_id,
            batch.record_type,
            refund,
            kind="refund",
            note=f"refund of {from_milli(refund)} credits for {why}",
            batch_uuid=batch.uuid,
        )
    return True


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
