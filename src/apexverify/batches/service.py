"""Batch lifecycle operations called by the API, the dashboard and the CLI.

Each function runs one write transaction and defers its background work as part of it
(``JobRunner.defer_with``): a job exists if and only if the state change that calls for it
committed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..accounts import service as accounts
from ..errors import BadRequest, BatchLocked, InsufficientCredits, NotFound
from ..store.models import Account, Batch, utcnow
from . import states
from .context import Services
from .params import BatchParameters


def get_batch(session: Session, account_id: str, batch_uuid: str) -> Batch:
    """The account's batch; another account's batch is indistinguishable from a missing one."""
    batch = session.scalars(
        select(Batch).where(Batch.uuid == batch_uuid, Batch.account_id == account_id)
    ).first()
    if batch is None:
        raise NotFound("Batch not found.")
    return batch


def upload_path(services: Services, batch_uuid: str) -> Path:
    return services.settings.uploads_dir / f"{batch_uuid}.txt"


def create_batch(
    services: Services,
    account_id: str,
    *,
    batch_uuid: str,
    name: str,
    description: str | None,
    params: BatchParameters,
    file_path: Path,
    file_size: int,
) -> Batch:
    """Register an uploaded file; parsing starts at once with the upload's parameters, so a
    client polling before any PATCH sees ``parsing_content`` and then a real figure."""
    locator = services.storage.put(file_path, file_path.name)
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
        created_at=now,
        updated_at=now,
    )
    try:
        with services.store.write() as session:
            session.add(batch)
            _defer_parse(services, session, batch_uuid, 1)
    except BaseException:
        services.storage.delete(locator)  # no batch row: the stored file would be orphaned
        raise
    return batch


def new_batch_uuid() -> str:
    return str(uuid.uuid4())


def configure(
    services: Services, account_id: str, batch_uuid: str, params: BatchParameters
) -> None:
    """PUT: store new parameters and re-parse with them (the old cost no longer applies)."""
    with services.store.write() as session:
        batch = get_batch(session, account_id, batch_uuid)
        if batch.status in states.LAUNCHED:
            raise BatchLocked()
        batch.parameters = params.stored()
        batch.record_type = params.type
        batch.target_country = params.target_country
        _defer_parse(services, session, batch_uuid, _restart_parse(batch))


def trigger_parse(services: Services, account_id: str, batch_uuid: str) -> None:
    """PATCH: (re-)parse with the current parameters; refused once launched."""
    with services.store.write() as session:
        batch = get_batch(session, account_id, batch_uuid)
        if batch.status in states.LAUNCHED:
            raise BatchLocked("The batch has been launched; it can no longer be re-parsed.")
        if not services.storage.exists(batch.file_path):
            raise BadRequest("The uploaded file is no longer available.")
        _defer_parse(services, session, batch_uuid, _restart_parse(batch))


def _restart_parse(batch: Batch) -> int:
    batch.parse_generation += 1
    batch.status = states.PARSING
    batch.error_message = None
    batch.updated_at = utcnow()
    return batch.parse_generation


def _defer_parse(services: Services, session: Session, batch_uuid: str, generation: int) -> None:
    services.jobs.defer_with(
        session,
        "parse_batch",
        lock=f"batch:{batch_uuid}",
        batch_uuid=batch_uuid,
        generation=generation,
    )


LAUNCH_ANSWERS = {
    states.PARSING: "not_ready_for_verification",
    states.ERROR: "not_ready_for_verification",
    states.ONGOING: "verification_already_ongoing",
    states.DONE: "verification_already_done",
}


def launch(services: Services, account_id: str, batch_uuid: str) -> str:
    """POST: debit the net cost and start verification, atomically.

    The status change is a compare-and-set on (status, parse_generation) and the debit is a
    conditional UPDATE that cannot take a balance below zero; both sit in one transaction with
    the ledger row, whose unique (batch, kind) forbids a second debit.
    """
    with services.store.write() as session:
        batch = get_batch(session, account_id, batch_uuid)
        if batch.status != states.READY:
            return LAUNCH_ANSWERS[batch.status]
        account = session.get(Account, account_id)
        assert account is not None
        cost = 0 if account.sandbox else batch.net_cost_milli
        moved = session.execute(
            update(Batch)
            .where(
                Batch.pk == batch.pk,
                Batch.status == states.READY,
                Batch.parse_generation == batch.parse_generation,
            )
            .values(
                status=states.ONGOING,
                charged_milli=cost,
                launched_at=utcnow(),
                updated_at=utcnow(),
            )
        ).rowcount
        if not moved:
            session.refresh(batch)
            return LAUNCH_ANSWERS.get(batch.status, "not_ready_for_verification")
        _debit(session, account_id, batch, cost)
        services.jobs.defer_with(
            session, "verify_batch", lock=f"verify:{batch_uuid}", batch_uuid=batch_uuid
        )
    return "ok"


def _debit(session: Session, account_id: str, batch: Batch, cost: int) -> None:
    if not accounts.move_credits(
        session,
        account_id,
        batch.record_type,
        -cost,
        kind="debit",
        note="batch launch",
        batch_uuid=batch.uuid,
    ):
        # Raising rolls back the status change too: the batch stays ready_for_verification.
        raise InsufficientCredits()


def delete_batch(services: Services, account_id: str, batch_uuid: str) -> None:
    with services.store.write() as session:
        batch = get_batch(session, account_id, batch_uuid)
        if batch.status in states.BUSY:
            raise BadRequest(f"The batch is {batch.status}; it can be deleted once that ends.")
        locator = batch.file_path
        session.delete(batch)  # records go with it (ON DELETE CASCADE)
    services.storage.delete(locator)


@dataclass(frozen=True)
class BatchPage:
    batches: list[Batch]
    total: int


def list_batches(
    services: Services,
    account_id: str,
    *,
    offset: int,
    limit: int,
    created_after: datetime | None,
    created_before: datetime | None,
) -> BatchPage:
    conditions = [Batch.account_id == account_id]
    if created_after is not None:
        conditions.append(Batch.created_at >= created_after)
    if created_before is not None:
        conditions.append(Batch.created_at <= created_before)
    with services.store.read() as session:
        total = session.scalar(select(func.count()).select_from(Batch).where(*conditions)) or 0
        rows = session.scalars(
            select(Batch)
            .where(*conditions)
            .order_by(Batch.created_at.desc(), Batch.pk.desc())
            .offset(offset)
            .limit(limit)
        )
        return BatchPage(list(rows), int(total))


def load_batch(services: Services, account_id: str, batch_uuid: str) -> Batch:
    with services.store.read() as session:
        return get_batch(session, account_id, batch_uuid)
