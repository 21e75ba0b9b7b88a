"""The JSON shapes of batch status, details and list entries, exactly as the spec names them
(``batch-status-reference.md`` and the workflow guide); extra fields are additive only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..credits import from_milli
from ..store.models import Batch, iso
from . import states
from .params import BatchParameters

PUBLIC_PARAMETERS = tuple(BatchParameters.model_fields)


def found_content(batch: Batch) -> dict[str, int]:
    t = batch.record_type
    return {
        f"valid_{t}": batch.valid_count,
        f"wrong_{t}": batch.wrong_count,
        f"duplicate_{t}": batch.duplicate_count,
    }


def found_cost(batch: Batch) -> dict[str, Any]:
    t = batch.record_type
    return {
        f"total_{t}_cost": round(from_milli(batch.total_cost_milli)),
        f"net_{t}_cost": from_milli(batch.net_cost_milli),
        f"{t}_cache_account_return": batch.cache_account_count,
        f"{t}_cache_global_return": batch.cache_global_count,
    }


def _execution(batch: Batch) -> dict[str, Any]:
    """Extra fields (allowed by the spec's 'execution costs and refund information')."""
    return {
        "execution_cost": from_milli(batch.charged_milli),
        "refunded_credits": from_milli(batch.refunded_milli),
    }


def stall_view(batch: Batch) -> dict[str, Any] | None:
    """Extension: why a running batch cannot move forward and when it tries again (None
    while it moves)."""
    if batch.stalled_since is None:
        return None
    retry_at = batch.next_attempt_at
    return {
        "reason": batch.stall_reason or "records wait for a retry",
        "since": iso(batch.stalled_since),
        "retry_at": iso(datetime.fromtimestamp(retry_at, UTC)) if retry_at else None,
    }


def status_view(batch: Batch) -> dict[str, Any]:
    """``GET /v1/batch/{uuid}``: one variant of the spec's ``oneOf``."""
    body: dict[str, Any] = {"status": batch.status}
    if batch.status == states.ERROR:
        body["message"] = batch.error_message or "Internal error while parsing."
        return body
    if batch.status == states.PARSING:
        return body
    body["found_content"] = found_content(batch)
    body["found_cost"] = found_cost(batch)
    if batch.status == states.ONGOING:
        body["progress"] = {"verified": batch.verified, "total": batch.to_verify}
        body["stall"] = stall_view(batch)
        body.update(_execution(batch))
    if batch.status == states.DONE:
        body["stats"] = batch.stats or {}
        body.update(_execution(batch))
        body.update(cancellation_view(batch))
    return body


def cancellation_view(batch: Batch) -> dict[str, Any]:
    """Extension fields of a finished batch: was it cancelled (``POST .../cancel``), when."""
    return {"cancelled": batch.cancelled_at is not None, "cancelled_at": iso(batch.cancelled_at)}


def parameters_view(batch: Batch) -> dict[str, Any]:
    stored = dict(batch.parameters)
    return {k: stored[k] for k in PUBLIC_PARAMETERS if k in stored}


def details_view(batch: Batch) -> dict[str, Any]:
    """``GET /v1/batch/{uuid}/details``: the Base / Pending / Final shape by status."""
    body: dict[str, Any] = {
        "batch_uuid": batch.uuid,
        "name": batch.name,
        "description": batch.description,
        "status": batch.status,
        "created_at": iso(batch.created_at),
        "updated_at": iso(batch.updated_at),
        "parameters": parameters_view(batch),
    }
    if batch.status == states.ERROR:
        body["message"] = batch.error_message or "Internal error while parsing."
    if batch.status in (states.READY, states.ONGOING, states.DONE):
        body["found_content"] = found_content(batch)
        body["found_cost"] = found_cost(batch)
    if batch.status == states.ONGOING:
        body["progress"] = {"verified": batch.verified, "total": batch.to_verify}
        body["stall"] = stall_view(batch)
    if batch.status == states.DONE:
        body["stats"] = batch.stats or {}
        body.update(_execution(batch))
        body.update(cancellation_view(batch))
    return body


def list_item_view(batch: Batch) -> dict[str, Any]:
    item: dict[str, Any] = {
        "batch_uuid": batch.uuid,
        "name": batch.name,
        "description": batch.description,
        "status": batch.status,
        "type": batch.record_type,
        "target_country": batch.target_country,
        "created_at": iso(batch.created_at),
        "updated_at": iso(batch.updated_at),
    }
    if batch.status in (states.READY, states.ONGOING, states.DONE):
        item["found_content"] = found_content(batch)
        item["found_cost"] = found_cost(batch)
    return item
