"""The batch endpoints of the ApexVerify v1 API (workflow guide steps 1-7, list, delete)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import ValidationError

from ...batches import exports, service, views
from ...batches.params import BatchParameters
from ...credits import from_milli
from ...web.deps import ReadTx, Svc, WriteTx
from ...web.downloads import ExportFormat, export_response
from ...web.uploads import accept_upload
from ..deps import Auth

router = APIRouter(prefix="/v1/batch", tags=["batch"])
# The upload accepts every optional parameter of PUT as a form field.
_OPTIONAL_FORM_FIELDS = tuple(
    name for name in BatchParameters.model_fields if name not in ("type", "target_country")
)


def _params_or_422(data: dict[str, Any], loc: str) -> BatchParameters:
    try:
        return BatchParameters.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": (loc, *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


@router.post("", summary="Upload a file")
async def upload(
    request: Request,
    account: Auth,
    services: Svc,
    tx: WriteTx,
    file: Annotated[UploadFile, File(description="UTF-8 text, one entry per line")],
    name: Annotated[str, Form(min_length=1, max_length=255)],
    type: Annotated[Literal["email", "phone"], Form()],
    target_country: Annotated[str, Form()],
    description: Annotated[str | None, Form(max_length=2048)] = None,
) -> dict[str, Any]:
    """Step 1: upload a list. Parsing starts at once with the upload's parameters."""
    form = await request.form()
    data: dict[str, Any] = {"type": type, "target_country": target_country}
    for field in _OPTIONAL_FORM_FIELDS:
        value = form.get(field)
        if isinstance(value, str) and value != "":
            data[field] = value
    params = _params_or_422(data, "body")
    batch = await accept_upload(
        services, tx, account.id, file, name=name, description=description, params=params
    )
    return {"status": "ok", "batch_uuid": batch.uuid, "created_at": views.iso(batch.created_at)}


@router.get("", summary="List batches")
def list_batches(
    account: Auth,
    tx: ReadTx,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> dict[str, Any]:
    """The account's batches, newest first, one page at a time."""
    page = service.list_batches(
        tx,
        account.id,
        offset=offset,
        limit=limit,
        created_after=created_after,
        created_before=created_before,
    )
    return {
        "batches": [views.list_item_view(b) for b in page.batches],
        "total": page.total,
        "offset": offset,
        "limit": limit,
    }


@router.put("/{batch_uuid}", summary="Configure parameters")
def configure(
    batch_uuid: UUID, body: dict[str, Any], account: Auth, services: Svc, tx: WriteTx
) -> dict[str, str]:
    """Step 2: set parameters. The batch is re-parsed with them (status parsing_content), so
    the cost shown before launch is always the cost of the current parameters."""
    params = _params_or_422(body, "body")
    service.configure(services, tx, account.id, str(batch_uuid), params)
    return {"message": "Success"}


@router.patch("/{batch_uuid}", summary="Trigger parsing")
def trigger_parse(batch_uuid: UUID, account: Auth, services: Svc, tx: WriteTx) -> dict[str, str]:
    """Step 3: (re-)parse with the current parameters. Idempotent; refused once launched."""
    service.trigger_parse(services, tx, account.id, str(batch_uuid))
    return {"status": "ok"}


@router.get("/{batch_uuid}/details", summary="Batch details")
def details(batch_uuid: UUID, account: Auth, tx: ReadTx) -> dict[str, Any]:
    """Step 4: the Base / Pending / Final shape according to the status."""
    return views.details_view(service.get_batch(tx, account.id, str(batch_uuid)))


@router.post("/{batch_uuid}", summary="Launch verification")
def launch(batch_uuid: UUID, account: Auth, services: Svc, tx: WriteTx) -> dict[str, str]:
    """Step 5: debit the net cost and start verifying (402 when credits are short)."""
    return {"status": service.launch(services, tx, account.id, str(batch_uuid))}


_CANCEL_DESCRIPTION = """**ApexVerify extension** (not part of the hosted ApexVerify v1 API).

Stops a batch in `verification_ongoing`. The batch ends `verification_done` at once: the
records verified so far keep their results, every record not verified yet gets an `unknown`
result with `evidence: "cancelled"` and is refunded in full (inconclusive results already
verified are refunded as at the normal end). Status and details then say `cancelled: true`
and `cancelled_at`; the stats add `total_verification_cancelled`. The export works as for any
finished batch.

Answer: `{"status": "ok", "records_cancelled": <records not verified>, "refunded_credits":
<the batch's whole refund>}`. 409 when the batch is not running (already cancelled, already
finished, or not launched: delete it instead); 404 when there is no such batch."""


@router.post(
    "/{batch_uuid}/cancel",
    summary="Cancel a running batch (extension)",
    description=_CANCEL_DESCRIPTION,
    responses={
        404: {"description": "No such batch for this account"},
        409: {"description": "The batch is not running; the message says why"},
    },
)
def cancel(batch_uuid: UUID, account: Auth, services: Svc, tx: WriteTx) -> dict[str, Any]:
    cancelled = service.cancel(services, tx, account.id, str(batch_uuid))
    return {
        "status": "ok",
        "records_cancelled": cancelled.records,
        "refunded_credits": from_milli(cancelled.refunded_milli),
    }


@router.get("/{batch_uuid}", summary="Batch status")
def status(batch_uuid: UUID, account: Auth, tx: ReadTx) -> dict[str, Any]:
    """Step 6: the lightweight status, one variant of the reference's oneOf."""
    return views.status_view(service.get_batch(tx, account.id, str(batch_uuid)))


@router.get("/{batch_uuid}/export", summary="Export results", response_model=None)
def export(
    batch_uuid: UUID,
    account: Auth,
    services: Svc,
    tx: ReadTx,
    format: Annotated[ExportFormat, Query()],
    include_details: bool = True,
    include_statistics: bool = True,
) -> StreamingResponse | FileResponse:
    """Step 7: JSON keyed by the original value (streamed) or an XLSX workbook."""
    batch = exports.exportable(tx, account.id, str(batch_uuid))
    return export_response(
        services, batch, format, details=include_details, statistics=include_statistics
    )


@router.delete("/{batch_uuid}", summary="Delete a batch")
def delete(batch_uuid: UUID, account: Auth, services: Svc, tx: WriteTx) -> dict[str, str]:
    """Irreversible: removes the file and the results. Refused while parsing or verifying."""
    service.delete_batch(services, tx, account.id, str(batch_uuid))
    return {"message": "Deleted"}
