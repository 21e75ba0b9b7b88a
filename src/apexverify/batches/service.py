"""Batch use cases called by the API, the dashboard and the CLI.

Each takes the caller's unit of work (``session``: the edge owns the transaction and commits
it) and never commits. Background work is deferred as part of that transaction
(``JobQueue.defer_with``) and file deletions run after its commit, so a job or a deleted file
exists if and only if the state change that calls for it committed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from ..accounts import service as accounts
from ..errors import BadRequest, BatchLocked, InsufficientCredits, NotCancellable, NotFound
from ..store.db import on_commit, on_rollback
from ..store.models import Batch, utcnow
from . import policy, states, verification
from .context import Services
from .params import BatchParameters
from .repository import batches as batch_rows
from .tasks import defer_parse, defer_verify


def get_batch(session: Session, account_id: str, batch_uuid: str) -> Batch:
    """The account's batch; another account's batch is indistinguishable from a missing one."""
    batch = batch_rows.for_account(session, account_id, batch_uuid)
    if batch is None:
        raise NotFound("Batch not found.")
    return batch


def new_batch_uuid() -> str:
    return str(uuid.uuid4())


def upload_path(services: Services, batch_uuid: str) -> Path:
    return services.settings.uploads_dir / f"{batch_uuid}.txt"


@dataclass(frozen=True)
class TableSource:
    """The original of a table upload (``sources``), stored beside the derived file."""

    format: str
    path: Path
    options: dict[str, Any]


def create_batch(
    services: Services,
    session: Session,
    account_id: str,
    *,
    batch_uuid: str,
    name: str,
    description: str | None,
    params: BatchParameters,
    file_path: Path,
    file_size: int,
    source: TableSource | None = None,
) -> Batch:
    """Register an uploaded file; parsing starts at once with the upload's parameters, so a
    client polling before any PATCH sees ``parsing_content`` and then a real figure."""
    source_locator = None
    if source is not None:
        source_locator = services.storage.put(source.path, source.path.name)
        on_rollback(session, lambda: services.storage.delete(source_locator or ""))
    locator = services.storage.put(file_path, file_path.name)
    # No batch row after all: the stored file would be orphaned.
    on_rollback(session, lambda: services.storage.delete(locator))
    now = utcnow()
    batch = Batch(
        uuid=batch_uuid,
        account_id=account_id,
        name=name,
        description=description,
        record_type=params.type,
        target_country=params.target_country,
        parameters=params.stored(),
        status=states.PARSING,
        parse_generation=1,
        file_path=locator,
        file_size=file_size,
        source_format=source.format if source else None,
        source_path=source_locator,
        source_options=source.options if source else None,
        created_at=now,
        updated_at=now,
    )
    session.add(batch)
    session.flush()
    defer_parse(services, session, batch_uuid, 1)
    return batch


def _is_launched(batch: Batch) -> bool:
    return batch.status in states.LAUNCHED or batch.launched_at is not None


def _reparse(services: Services, session: Session, batch: Batch, **values: object) -> None:
    """PUT/PATCH: a new parse generation (the old figures and cost no longer apply)."""
    generation = batch.parse_generation + 1
    states.transition(
        session,
        batch,
        states.BatchStatus(batch.status),
        states.PARSING,
        generation=batch.parse_generation,
        parse_generation=generation,
        error_message=None,
        **values,
    )
    defer_parse(services, session, batch.uuid, generation)


def configure(
    services: Services, session: Session, account_id: str, batch_uuid: str, params: BatchParameters
) -> None:
    """PUT: store new parameters and re-parse with them."""
    batch = get_batch(session, account_id, batch_uuid)
    if _is_launched(batch):
        raise BatchLocked()
    _reparse(
        services,
        session,
        batch,
        parameters=params.stored(),
        record_type=params.type,
        target_country=params.target_country,
    )


def trigger_parse(services: Services, session: Session, account_id: str, batch_uuid: str) -> None:
    """PATCH: (re-)parse with the current parameters; refused once launched."""
    batch = get_batch(session, account_id, batch_uuid)
    if _is_launched(batch):
        raise BatchLocked("The batch has been launched; it can no longer be re-parsed.")
    if not services.storage.exists(batch.file_path):
        raise BadRequest("The uploaded file is no longer available.")
    _reparse(services, session, batch)


LAUNCH_ANSWERS = {
    states.PARSING: "not_ready_for_verification",
    states.ERROR: "not_ready_for_verification",
    states.ONGOING: "verification_already_ongoing",
    states.DONE: "verification_already_done",
}


def launch(services: Services, session: Session, account_id: str, batch_uuid: str) -> str:
    """POST: debit the net cost and start verification, atomically.

    The status change is a compare-and-set on (status, parse_generation) and the debit is a
    conditional UPDATE that cannot take a balance below zero; both sit in the caller's
    transaction with the ledger row, whose unique (batch, kind) forbids a second debit.
    """
    batch = get_batch(session, account_id, batch_uuid)
    if batch.status != states.READY:
        return LAUNCH_ANSWERS[states.BatchStatus(batch.status)]
    account = accounts.get_account(session, account_id)
    cost = policy.launch_cost_milli(account, batch.net_cost_milli)
    try:
        states.transition(
            session,
            batch,
            states.READY,
            states.ONGOING,
            generation=batch.parse_generation,
            charged_milli=cost,
            launched_at=utcnow(),
        )
    except states.TransitionLost:
        session.refresh(batch)
        return LAUNCH_ANSWERS.get(states.BatchStatus(batch.status), "not_ready_for_verification")
    if not accounts.move_credits(
        session,
        account_id,
        batch.record_type,
        -cost,
        kind="debit",
        note="batch launch",
        batch_uuid=batch.uuid,
    ):
        # The caller's transaction rolls back: the batch stays ready_for_verification.
        raise InsufficientCredits()
    defer_verify(services, session, batch.uuid)
    return "ok"


# Cancelling a batch the account cancelled: what the verification ended with says so.
CANCEL_EVIDENCE = "cancelled"
CANCEL_REASON = "cancelled by the account before it was verified"


@dataclass(frozen=True)
class Cancellation:
    """What a cancel did: the records ended unverified and the batch's whole refund."""

    records: int
    refunded_milli: int


def cancel(services: Services, session: Session, account_id: str, batch_uuid: str) -> Cancellation:
    """Extension (``POST /v1/batch/{uuid}/cancel``): stop a running batch. It ends
    ``verification_done`` with the results verified so far; every record not verified yet
    gets an ``unknown`` result saying it was cancelled and is refunded in full (see
    ``verification.end_rest_in``). Only ``verification_ongoing`` can be cancelled; anything
    else is a 409 saying why."""
    batch = get_batch(session, account_id, batch_uuid)
    if batch.status != states.ONGOING:
        raise NotCancellable(_not_cancellable(batch))
    try:
        ended = verification.end_rest_in(
            session,
            services.settings,
            batch,
            reason=CANCEL_REASON,
            evidence=CANCEL_EVIDENCE,
            cancelled=True,
            queue=services.queue,  # the webhook events are deferred with the cancel
        )
    except states.TransitionLost:
        # A chunk finished it (or another cancel won) between the read and the update; the
        # raise rolls this unit of work back, row updates included.
        raise NotCancellable("The batch finished while it was being cancelled.") from None
    return Cancellation(ended, batch.refunded_milli)


def _not_cancellable(batch: Batch) -> str:
    if batch.status == states.DONE:
        if batch.cancelled_at is not None:
            return "The batch was already cancelled."
        return "The batch has already finished (verification_done); nothing to cancel."
    if batch.status == states.ERROR and batch.launched_at is not None:
        return "The batch has already finished (internal_error); nothing to cancel."
    return (
        f"The batch is {batch.status}: it is not running, so there is nothing to cancel; "
        "delete it instead."
    )


def delete_batch(services: Services, session: Session, account_id: str, batch_uuid: str) -> None:
    batch = get_batch(session, account_id, batch_uuid)
    if batch.status in states.BUSY:
        raise BadRequest(f"The batch is {batch.status}; it can be deleted once that ends.")
    locators = [batch.file_path, *([batch.source_path] if batch.source_path else [])]
    session.delete(batch)  # records go with it (ON DELETE CASCADE)
    on_commit(session, lambda: [services.storage.delete(locator) for locator in locators])


@dataclass(frozen=True)
class BatchPage:
    batches: list[Batch]
    total: int


def list_batches(
    session: Session,
    account_id: str,
    *,
    offset: int,
    limit: int,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> BatchPage:
    rows, total = batch_rows.page(
        session,
        account_id,
        offset=offset,
        limit=limit,
        created_after=created_after,
        created_before=created_before,
    )
    return BatchPage(rows, total)
