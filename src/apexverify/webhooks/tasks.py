"""The background side of webhooks, for both queues:

    deliver_webhook(delivery_id, attempt)   one attempt; a failure defers the next one after
                                            an exponential backoff, in the transaction that
                                            writes the attempt; after the last it is failed
    sweep (periodic)                        defer every due pending delivery that has no job
                                            (after a restart or a kill -9: the in-process
                                            queue lives in memory, the rows do not)

The delivery row is the truth: ``attempts`` counts the attempts made, ``next_attempt_at``
says when the next is due, and an attempt is written with a compare-and-set on the count, so
a doubled job never makes one attempt twice. A job whose ``attempt`` is not the row's next
one is stale and does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import orjson
from sqlalchemy.orm import Session

from ..jobs.base import JobQueue, Periodic
from ..settings import Settings
from ..store.models import WebhookDelivery, WebhookEndpoint, utcnow
from . import addresses, delivery, repository
from .errors import InvalidEndpoint
from .signing import SealBroken, headers, unseal

if TYPE_CHECKING:
    from .context import WebhookServices

log = logging.getLogger(__name__)

DELIVER = "deliver_webhook"
SWEEP_SECONDS = 5.0
SWEEP_BATCH = 200
# Between the parse jobs (10) and the verification chunks (0): a receiver hears of a finished
# batch without waiting behind another batch's chunks.
DELIVERY_PRIORITY = 5


def defer_delivery(
    queue: JobQueue,
    session: Session | None,
    delivery_id: str,
    *,
    attempt: int,
    run_at: float | None = None,
) -> None:
    """Enqueue attempt ``attempt`` of a delivery, in ``session``'s transaction when given.
    The dedupe key names the attempt: the running attempt never swallows the next one."""
    args = {"delivery_id": delivery_id, "attempt": attempt}
    lock, key = f"webhook:{delivery_id}", f"{DELIVER}:{delivery_id}:{attempt}"
    if session is None:
        queue.defer(
            DELIVER, args, lock=lock, dedupe_key=key, run_at=run_at, priority=DELIVERY_PRIORITY
        )
    else:
        queue.defer_with(
            session,
            DELIVER,
            args,
            lock=lock,
            dedupe_key=key,
            run_at=run_at,
            priority=DELIVERY_PRIORITY,
        )


def retry_delay(settings: Settings, attempts: int) -> float:
    """Seconds between attempt ``attempts`` (failed) and the next: doubling from the base,
    capped."""
    base = settings.webhooks_retry_base_seconds
    return float(min(base * 2 ** max(attempts - 1, 0), settings.webhooks_retry_max_seconds))


@dataclass(frozen=True)
class _Due:
    delivery: WebhookDelivery
    endpoint: WebhookEndpoint


def _load(services: WebhookServices, delivery_id: str, attempt: int) -> _Due | None:
    with services.store.read() as session:
        found = repository.delivery(session, delivery_id)
    if found is None:
        return None  # its endpoint was removed
    row, endpoint = found
    if row.status != repository.PENDING or endpoint.disabled_at is not None:
        return None
    if row.attempts + 1 != attempt:
        return None  # stale: this attempt was made, or another job makes it
    return _Due(row, endpoint)


async def deliver(services: WebhookServices, delivery_id: str, attempt: int = 1) -> None:
    due = await asyncio.to_thread(_load, services, delivery_id, attempt)
    if due is None:
        return
    settings = services.settings
    try:
        secret = unseal(services.secret, due.endpoint.id, due.endpoint.secret)
        target = addresses.parse(due.endpoint.url)
    except (SealBroken, InvalidEndpoint) as exc:
        # Retrying cannot help: give up at once, visibly in the log.
        result = delivery.Attempt(False, error=str(exc))
        await asyncio.to_thread(_write, services, due.delivery, attempt, result, final=True)
        return
    body = orjson.dumps(due.delivery.payload)
    # The timestamp is the attempt's (a receiver rejects old ones); the id never changes.
    signed = headers(secret, due.delivery.id, int(time.time()), body)
    result = await delivery.attempt(
        target,
        body,
        signed,
        timeout_seconds=settings.webhooks_timeout_seconds,
        allow_private=settings.webhooks_allow_private_networks,
    )
    await asyncio.to_thread(_write, services, due.delivery, attempt, result)


def _write(
    services: WebhookServices,
    row: WebhookDelivery,
    attempt: int,
    result: delivery.Attempt,
    *,
    final: bool = False,
) -> None:
    """Write attempt ``attempt``'s outcome and, when another follows, defer it in the same
    transaction."""
    settings = services.settings
    now = utcnow()
    values: dict[str, object] = {
        "last_status_code": result.status_code,
        "last_error": result.error,
    }
    retry_at = None
    if result.ok:
        values.update(status=repository.DELIVERED, delivered_at=now, next_attempt_at=None)
    elif final or attempt >= settings.webhooks_max_attempts:
        values.update(status=repository.FAILED, next_attempt_at=None)
    else:
        retry_at = now + timedelta(seconds=retry_delay(settings, attempt))
        values.update(next_attempt_at=retry_at)
    with services.store.write() as session:
        if not repository.record_attempt(session, row.id, attempt, **values):
            return  # removed meanwhile, or another job wrote this attempt
        if retry_at is not None:
            defer_delivery(
                services.queue, session, row.id, attempt=attempt + 1, run_at=retry_at.timestamp()
            )
    _log(row, attempt, result, retry_at is not None)


def _log(row: WebhookDelivery, attempt: int, result: delivery.Attempt, again: bool) -> None:
    if result.ok:
        log.info("webhook %s (%s) delivered at attempt %d", row.id, row.event_type, attempt)
    elif again:
        log.warning(
            "webhook %s (%s) attempt %d failed: %s; retried",
            row.id,
            row.event_type,
            attempt,
            result.error,
        )
    else:
        log.warning(
            "webhook %s (%s) failed for good after attempt %d: %s",
            row.id,
            row.event_type,
            attempt,
            result.error,
        )


def sweep(services: WebhookServices) -> int:
    """Defer every due pending delivery with no job waiting or running; returns how many."""
    with services.store.read() as session:
        due = repository.due_pending(session, utcnow(), SWEEP_BATCH)
    deferred = 0
    for delivery_id, attempts in due:
        if services.queue.active(DELIVER, delivery_id=delivery_id):
            continue
        defer_delivery(services.queue, None, delivery_id, attempt=attempts + 1)
        deferred += 1
    if deferred:
        log.info("webhooks sweep deferred %d pending deliveries", deferred)
    return deferred


def register(services: WebhookServices) -> tuple[Periodic, ...]:
    """Register the delivery task on the services' queue; returns the sweep, which the
    executing process runs (at start, then every few seconds)."""

    async def run_deliver(delivery_id: str, attempt: int = 1) -> None:
        await deliver(services, delivery_id, attempt)

    async def run_sweep() -> None:
        await asyncio.to_thread(sweep, services)

    services.queue.register(DELIVER, run_deliver)
    return (Periodic("webhooks sweep", SWEEP_SECONDS, run_sweep),)
