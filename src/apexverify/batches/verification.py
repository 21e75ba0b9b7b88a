"""Verification of a launched batch: due rows -> engine -> results, then the tally and refund.

The database is the truth. A chunk's results are written in one transaction together with the
progress counter, and only onto rows that have no verdict yet, so a chunk interrupted by a
crash is verified again but written once: exactly one result per record. The end of a batch
(``finalize`` when nothing is left, ``fail`` when the engine cannot go on, ``end_rest`` when
the account cancels it or it waited too long) is a compare-and-set on the status plus a
ledger row unique per (batch, refund), so a batch is settled once however many workers race
to end it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import weakref
from collections import Counter
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.orm import Session

from .. import metrics
from ..accounts import service as accounts
from ..credits import from_milli
from ..jobs.base import JobQueue
from ..settings import Settings
from ..store.models import Account, Batch, utcnow
from ..verify.base import (
    Outcome,
    RecordType,
    Retry,
    Verifier,
    VerifyContext,
    VerifyItem,
    inconclusive_result,
)
from ..verify.email.verdicts import EXTRA_FIELDS as EMAIL_EXTRA_FIELDS
from ..verify.sandbox import SandboxVerifier
from ..webhooks import service as webhooks
from ..webhooks.events import Event, EventType
from . import policy, states, views
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
    )


async def verify_chunk(services: Services, run: Run, ids: Sequence[int]) -> int | None:
    """Verify the rows of one chunk that are still due; returns when the earliest of those an
    engine asked to retry later is due (None: every row got its verdict). Engine errors
    propagate: the caller's retry policy decides what happens to the chunk."""
    verifier = run.verifier
    if isinstance(verifier, SandboxVerifier) and not verifier.simulates_latency:
        async with _cpu_bound_chunks():
            if services.host is not None:  # claim to write in the job process
                written = await services.host.run(_sandbox_chunk, run, verifier, ids)
            else:
                written = await asyncio.to_thread(_sandbox_chunk, services, run, verifier, ids)
        return _note(services, run.batch, written)
    # A real engine's chunk: the claim and the write stay on this process's threads (in the
    # job process they measured no faster against the SMTP lab, docs/benchmarks.md).
    chunk = await asyncio.to_thread(_claim, services, run.batch.pk, ids)
    if not chunk:
        return None
    items = [VerifyItem(r.normalized, r.attempts + 1) for r in chunk]
    outcomes = await verifier.verify_many(items, run.context)
    return await asyncio.to_thread(store, services, run, chunk, outcomes)


# Sandbox chunks are pure CPU under the GIL: side by side they are no faster than one at a
# time (docs/benchmarks.md), and each one beside them takes turns at the GIL from the event
# loop, whose answers then wait (status p99 under load: 100-170 ms with four at once, about
# 30 ms with one). So a process runs one at a time, claim to write in one call: in the
# embedded server's job process (``Services.host``), else on a worker thread; the
# decision of 10,000 values never runs on the loop.
_CPU_BOUND: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _cpu_bound_chunks() -> asyncio.Lock:
    """This event loop's lock (tests run several loops in one process)."""
    loop = asyncio.get_running_loop()
    lock = _CPU_BOUND.get(loop)
    if lock is None:
        lock = _CPU_BOUND[loop] = asyncio.Lock()
    return lock


def _sandbox_chunk(
    services: Services, run: Run, verifier: SandboxVerifier, ids: Sequence[int]
) -> Written | None:
    """The sandbox decides from the values alone: no items built, nothing awaited. Runs in
    a job process or on a worker thread; its caller notes the result (:func:`_note`)."""
    chunk = _claim(services, run.batch.pk, ids)
    if not chunk:
        return None
    outcomes = verifier.decide([r.normalized for r in chunk])
    return write(services, run.batch, chunk, outcomes)


def _claim(services: Services, batch_pk: int, ids: Sequence[int]) -> list[records.PendingRecord]:
    with services.store.read() as session:
        return records.claim_ids(session, batch_pk, ids)


@dataclass(frozen=True)
class Written:
    """What writing a chunk did, for the process that runs the batch to log and count (the
    write may have run in a job process, whose metrics nobody scrapes)."""

    earliest: int | None  # the earliest retry time scheduled
    tally: dict[str, int]  # final results by verdict
    retried: int
    resumed: bool
    stalled: bool
    reason: str


def store(
    services: Services, run: Run, chunk: list[records.PendingRecord], outcomes: list[Outcome]
) -> int | None:
    """One chunk's outcomes in one transaction (:func:`write`), logged and counted here.
    Returns the earliest retry time scheduled, if any."""
    return _note(services, run.batch, write(services, run.batch, chunk, outcomes))


def _note(services: Services, batch: Batch, written: Written | None) -> int | None:
    if written is None:
        return None
    if written.resumed:
        log.info("verification of %s resumed: results are being decided again", batch.uuid)
    if written.stalled:
        _log_stall(services, batch.uuid, written.reason, written.earliest or time.time())
    for verdict, count in written.tally.items():
        metrics.RECORDS_VERIFIED.labels(batch.record_type, verdict).inc(count)
    if written.retried:
        metrics.RECORDS_RETRIED.labels(batch.record_type).inc(written.retried)
    return written.earliest


def write(
    services: Services, batch: Batch, chunk: list[records.PendingRecord], outcomes: list[Outcome]
) -> Written:
    """One chunk's outcomes in one transaction: final results, retry times and the progress
    counter. (The caches are fed once, when the batch ends: :func:`feed_caches`.)"""
    if len(outcomes) != len(chunk):
        raise RuntimeError("engine returned a different number of outcomes than items")
    now = int(time.time())
    finals: list[records.Final] = []
    retries: list[tuple[int, int, int]] = []
    # Each distinct outcome object is encoded once: an engine that hands out shared results
    # (the sandbox: a handful per chunk) costs one JSON encoding per result, not per row.
    encoded: dict[int, tuple[str, str]] = {}
    tally: Counter[str] = Counter()
    for record, outcome in zip(chunk, outcomes, strict=True):
        if isinstance(outcome, Retry):
            retries.append((record.id, _retry_at(outcome, now), _retry_attempts(outcome, record)))
            continue
        known = encoded.get(id(outcome))
        if known is None:
            known = encoded[id(outcome)] = (outcome.verdict, _json(outcome.to_dict()))
        verdict, data = known
        finals.append((record.id, verdict, data, record.attempts + 1))
        tally[verdict] += 1
    resumed = stalled = False
    reason = ""
    earliest = min((at for _rid, at, _n in retries), default=None)
    with _chunk_writer(services), services.store.write() as session:
        written = records.write_results(session, finals)
        records.schedule_retries(session, retries)
        if written:
            batch_rows.add_verified(session, batch.pk, written)
            resumed = batch.stalled_since is not None and batch_rows.clear_stall(session, batch.pk)
        if earliest is not None:
            reason = _retry_summary(chunk, outcomes)
            if finals:
                batch_rows.note_retry_reason(session, batch.pk, reason)
            else:  # this chunk decided nothing: a stall, unless other chunks moved meanwhile
                stalled = batch_rows.mark_stalled(
                    session, batch.pk, earliest, reason=reason, if_verified=batch.verified
                )
    return Written(earliest, dict(tally), len(retries), resumed, stalled, reason)


# On SQLite the chunks of this process write one at a time behind a Python lock: SQLite has
# a single writer anyway, and a chunk waiting for it in BEGIN IMMEDIATE sleeps in the busy
# handler (up to 100 ms between tries) well past the moment the lock is free; this lock
# hands over at once. PostgreSQL writes chunks side by side.
_SQLITE_CHUNK_WRITER = threading.Lock()


def _chunk_writer(services: Services) -> AbstractContextManager[object]:
    return _SQLITE_CHUNK_WRITER if services.store.is_sqlite else nullcontext()


def _json(data: dict[str, Any]) -> str:
    return orjson.dumps(data).decode()


def _retry_at(retry: Retry, now: int) -> int:
    """The stored retry time: the engine's ``not_before`` when it set one (fixed when the
    4xx arrived, however long the rest of the chunk took), else ``after_seconds`` from now
    (at least 1 s)."""
    if retry.not_before is not None:
        return max(math.ceil(retry.not_before), now)
    return now + max(int(retry.after_seconds), 1)


def _retry_attempts(retry: Retry, record: records.PendingRecord) -> int:
    # An item the engine held back unprobed (a server's learned limits) keeps its attempt.
    return record.attempts + 1 if retry.consumes_attempt else record.attempts


def _log_stall(services: Services, batch_uuid: str, reason: str, until: float) -> None:
    log.warning(
        "verification of %s stalled: %s; next attempt at %s UTC (the rest ends unknown after "
        "%.0fs without progress)",
        batch_uuid,
        reason,
        time.strftime("%H:%M:%S", time.gmtime(until)),
        services.settings.stall_deadline_seconds,
    )


def stall_expired(services: Services, batch: Batch) -> bool:
    """Has the ongoing batch been stalled for longer than the deadline?"""
    if batch.stalled_since is None:
        return False
    return time.time() - _epoch(batch.stalled_since) >= services.settings.stall_deadline_seconds


def _retry_summary(chunk: list[records.PendingRecord], outcomes: list[Outcome]) -> str:
    """The most common reason of a chunk's retries, with how many rows gave it."""
    reasons = Counter(o.reason or "retry requested" for o in outcomes if isinstance(o, Retry))
    reason, count = reasons.most_common(1)[0]
    return f"{count} of {len(chunk)} records in the last chunk: {reason}"


@dataclass(frozen=True)
class Waiting:
    """No row is due: the batch waits until ``until`` (epoch seconds); ``expired`` when it
    has waited past the stall deadline."""

    until: float
    expired: bool = False
    reason: str = ""


def next_step(services: Services, batch_uuid: str) -> float | Waiting | None:
    """After a fan-out that found no due row: 0 when the batch can be finalized, a
    :class:`Waiting` when rows wait for retries (the batch is then marked stalled), or None
    (nothing to do here)."""
    with services.store.write() as session:
        batch = batch_rows.by_uuid(session, batch_uuid)
        if batch is None or batch.status != states.ONGOING:
            return None
        at = records.next_retry_at(session, batch.pk)
        if at is None:
            return 0
        reason = batch.stall_reason or "records wait for a retry"
        if stall_expired(services, batch):
            return Waiting(time.time(), expired=True, reason=reason)
        since = _epoch(batch.stalled_since) if batch.stalled_since else time.time()
        # Wake up at the retry time, or at the deadline if that comes first.
        until = min(float(max(at, 1)), since + services.settings.stall_deadline_seconds)
        started = batch_rows.mark_stalled(session, batch.pk, math.ceil(until))
    if started:
        _log_stall(services, batch_uuid, reason, until)
    return Waiting(until, reason=reason)


def _epoch(moment: datetime) -> float:
    if moment.tzinfo is None:  # SQLite hands back naive datetimes; they were stored in UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


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
        return _settle(session, services.queue, batch, states.DONE, counts, refund)


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
        settled = _settle(
            session, services.queue, batch, states.ERROR, counts, refund, error_message=message
        )
    if settled:
        log.error("verification of %s failed: %s", batch_uuid, reason)
    return settled


def end_rest(
    services: Services, batch_uuid: str, *, reason: str, evidence: str, cancelled: bool
) -> int | None:
    """End an ongoing batch early in its own transaction (a background task: the stall
    deadline). Returns the records ended without a verdict, or None when the batch was not
    ongoing or another actor settled it first. See :func:`end_rest_in`."""
    try:
        with services.store.write() as session:
            batch = batch_rows.by_uuid(session, batch_uuid)
            if batch is None or batch.status != states.ONGOING:
                return None
            return end_rest_in(
                session,
                services.settings,
                batch,
                reason=reason,
                evidence=evidence,
                cancelled=cancelled,
                queue=services.queue,
            )
    except states.TransitionLost:
        return None  # settled meanwhile; the rows this transaction ended were rolled back


def end_rest_in(
    session: Session,
    settings: Settings,
    batch: Batch,
    *,
    reason: str,
    evidence: str,
    cancelled: bool,
    queue: JobQueue | None = None,
) -> int:
    """End the ongoing ``batch`` in ``verification_done``, in the caller's transaction:
    results verified so far are kept; every row still without a verdict gets an ``unknown``
    result saying ``evidence``/``reason`` (one UPDATE) and is refunded in full, plus the
    inconclusive results already verified under the refund policy, as ``finalize`` does.
    Stats are those of ``finalize`` (ended rows count as unknown) plus
    ``total_verification_<evidence>``: the rows ended. ``cancelled`` sets ``cancelled_at``.
    The webhook events (``batch.cancelled`` too when ``cancelled``) are recorded in the same
    transaction; their first attempt is deferred on ``queue`` (without one, the webhooks
    sweep defers it a few seconds later).

    Returns the rows ended. Raises :class:`~.states.TransitionLost` when another actor
    settled the batch first: the caller's transaction must roll back, taking the row
    updates with it.
    """
    # Rows first, then the batch row: the order a chunk's write takes its locks in (results,
    # then the progress counter), so on PostgreSQL a racing chunk waits instead of deadlocking.
    result = ended_result(batch.record_type, evidence=evidence, reason=reason)
    ended = records.end_unverified(session, batch.pk, "unknown", result)
    records.copy_results_to_duplicates(session, batch.pk)
    counts = records.verdict_counts(session, batch.pk)
    # The ended rows are fresh unknowns too, but they are refunded as not verified.
    verified_unknown = counts["fresh_unknown"] - ended
    refund = min(
        policy.unverified_refund_milli(settings, batch.record_type, ended)
        + policy.unknown_refund_milli(settings, batch.record_type, verified_unknown),
        batch.charged_milli,
    )
    values: dict[str, Any] = {"cancelled_at": utcnow()} if cancelled else {}
    settled = _settle(
        session,
        queue,
        batch,
        states.DONE,
        counts,
        refund,
        why=f"records not verified ({evidence}) and inconclusive results",
        extra_stats={f"total_verification_{evidence}": ended},
        **values,
    )
    if not settled:
        raise states.TransitionLost(batch.uuid, states.ONGOING, states.DONE)
    log.info(
        "verification of %s ended early (%s): %d records not verified", batch.uuid, reason, ended
    )
    return ended


def ended_result(record_type: str, *, evidence: str, reason: str) -> dict[str, Any]:
    """What the engine's own inconclusive result holds, for a row that was never verified:
    the documented fields with ``unknown`` set and the engine's extra keys (None: nothing was
    looked up), so exports give these rows the same columns as the others."""
    kind: RecordType = "email" if record_type == "email" else "phone"
    result = inconclusive_result(kind, evidence, reason)
    result.extra = {**dict.fromkeys(_engine_extra_keys(kind)), **result.extra}
    return result.to_dict()


def _engine_extra_keys(record_type: RecordType) -> tuple[str, ...]:
    """The extra keys every result of the real engine for ``record_type`` carries."""
    if record_type == "email":
        return EMAIL_EXTRA_FIELDS
    # Imported here: the phone analysis loads libphonenumber's carrier tables.
    from ..verify.phone.analysis import PhoneAnalysis, base_extra

    return tuple(base_extra(PhoneAnalysis(None, None, None, "unknown", False, None, False)))


def _settle(
    session: Session,
    queue: JobQueue | None,
    batch: Batch,
    to: states.BatchStatus,
    counts: dict[str, int],
    refund: int,
    *,
    why: str | None = None,
    extra_stats: dict[str, Any] | None = None,
    **values: Any,
) -> bool:
    try:
        states.transition(
            session,
            batch,
            states.ONGOING,
            to,
            stats={**_stats(counts, batch.duplicate_count), **(extra_stats or {})},
            refunded_milli=refund,
            finished_at=utcnow(),
            **values,
        )
    except states.TransitionLost:
        return False  # another worker settled it first
    feed_caches(session, batch)
    if refund:
        why = why or ("inconclusive results" if to == states.DONE else "records not verified")
        accounts.move_credits(
            session,
            batch.account_id,
            batch.record_type,
            refund,
            kind="refund",
            note=f"refund of {from_milli(refund)} credits for {why}",
            batch_uuid=batch.uuid,
        )
    notify_webhooks(session, queue, batch, *_settle_events(to, batch))
    return True


def feed_caches(session: Session, batch: Batch) -> None:
    """Store the conclusive verdicts the engine decided for ``batch`` in the caches its
    policy feeds, once, in the transaction that ends it (done, cancelled, stalled or failed:
    whatever was verified is reusable). Chunk by chunk the cache's random keys made every
    commit rewrite most of its index (the largest cost of a sandbox batch, measured); at the
    end it is one sorted statement per scope."""
    account = batch_rows.owner(session, batch)
    rules = policy.cache_policy(account, BatchParameters.model_validate(batch.parameters))
    for scope in rules.writes:
        caches.feed_from_batch(session, scope, batch.record_type, batch.pk)


def _settle_events(to: states.BatchStatus, batch: Batch) -> tuple[EventType, ...]:
    if to == states.ERROR:
        return (EventType.ERROR,)
    # A cancelled batch is also done: a receiver that only fetches finished results
    # (verification_done) gets it too (docs/webhooks.md).
    if batch.cancelled_at is not None:
        return (EventType.CANCELLED, EventType.DONE)
    return (EventType.DONE,)


def notify_webhooks(
    session: Session, queue: JobQueue | None, batch: Batch, *types: EventType
) -> None:
    """Record the events of a transition for the account's webhook endpoints, in the
    transaction of the transition: what the status endpoint shows, with the batch's name."""
    data = {
        "batch_uuid": batch.uuid,
        "name": batch.name,
        "type": batch.record_type,
        "target_country": batch.target_country,
        **views.status_view(batch),
    }
    for event_type in types:
        webhooks.record_event(session, queue, batch.account_id, Event(event_type, batch.uuid, data))


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
