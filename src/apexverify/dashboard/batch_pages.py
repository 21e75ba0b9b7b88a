"""Batch pages: list, upload, batch summary with live progress, launch, cancel, export, delete.

Every action calls the same ``batches`` functions as the v1 API routes, so the rules (states,
pricing, credits, locks) exist once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from ..accounts import service as accounts
from ..batches import exports, results_view, service, states, views
from ..batches.context import Services
from ..errors import ApexError, StorageFull
from ..storage.tempfiles import is_disk_full
from ..store.models import Batch
from ..web.deps import ReadTx, Svc, WriteTx
from ..web.downloads import ExportFormat, export_response
from ..web.uploads import BodyTooLarge, accept_upload, capped_request
from .auth import Form, User, checked_form
from .forms import ACCEPT, UploadForm, defaults, read_parameters, read_upload_form
from .render import page

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 25
# The second chart of a finished batch: email quality, or the phone line type.
BREAKDOWN_FIELD = {"email": "quality", "phone": "type"}


@router.get("/")
def batch_list(
    request: Request,
    user: User,
    tx: ReadTx,
    page_no: Annotated[int, Query(alias="page", ge=1)] = 1,
) -> Response:
    listing = service.list_batches(
        tx, user.account.id, offset=(page_no - 1) * PAGE_SIZE, limit=PAGE_SIZE
    )
    pages = max(1, math.ceil(listing.total / PAGE_SIZE))
    return page(
        request,
        "batches.html",
        {
            "user": user,
            "batches": listing.batches,
            "total": listing.total,
            "page_no": page_no,
            "pages": pages,
            "has_counts": {states.READY, states.ONGOING, states.DONE},
        },
    )


@router.get("/batches/new")
def upload_page(request: Request, user: User) -> Response:
    return _upload_form(request, user, UploadForm(values=defaults()))


def _upload_form(request: Request, user: Any, form: UploadForm, status: int = 200) -> Response:
    max_mib = request.app.state.services.settings.max_upload_bytes / (1024 * 1024)
    context = {
        "user": user,
        "form": form,
        "max_mib": max_mib,
        "max_bytes": request.app.state.services.settings.max_upload_bytes,
        "accept": ACCEPT,
    }
    return page(request, "upload.html", context, status=status)


@router.post("/batches/new")
async def upload(request: Request, user: User, services: Svc, tx: WriteTx) -> Response:
    # The form is read here, not by the ``Form`` dependency, so that its body is capped as an
    # upload's while it streams (web/uploads.py): an oversized file is cut off before it is
    # spooled to disk. ``User`` has checked the session before any byte is read.
    try:
        raw = await checked_form(capped_request(request), services)
    except BodyTooLarge as exc:
        form = UploadForm(values=defaults(), errors={"file": str(exc.detail)})
        refused = _upload_form(request, user, form, status=413)
        refused.headers["Connection"] = "close"  # the server stops reading the rest
        return refused
    except OSError as exc:  # the form's spool file could not be written
        if not is_disk_full(exc):
            raise
        form = UploadForm(values=defaults(), errors={"file": StorageFull().message})
        return _upload_form(request, user, form, status=507)
    try:
        return await _create_batch(request, user, services, tx, raw)
    finally:
        await raw.close()  # the spooled file goes now rather than when collected


async def _create_batch(
    request: Request, user: Any, services: Services, tx: Session, raw: FormData
) -> Response:
    form = read_upload_form(raw)
    file = raw.get("file")
    if not isinstance(file, UploadFile) or not file.filename:
        form.errors["file"] = (
            "Choose a file: a list with one email or phone number per line, a CSV or TSV, or an"
            " XLSX/ODS spreadsheet."
        )
    if form.errors or form.params is None or not isinstance(file, UploadFile):
        return _upload_form(request, user, form, status=400)
    try:
        batch = await accept_upload(
            services,
            tx,
            user.account.id,
            file,
            name=form.name,
            description=form.description,
            params=form.params,
            table=form.table(file.filename),
        )
    except ApexError as exc:
        tx.rollback()
        # A column that cannot be found is the Column field's error; the rest the file's.
        field_name = "column" if form.values.get("column") and "column" in exc.message else "file"
        form.errors[field_name] = exc.message
        return _upload_form(request, user, form, status=exc.status_code)
    return RedirectResponse(f"/batches/{batch.uuid}", status_code=303)


def _balance(session: Session, account_id: str, record_type: str) -> float:
    return accounts.balances(accounts.get_account(session, account_id))[f"{record_type}_credit"]


def _breakdown(session: Session, batch: Batch) -> dict[str, int]:
    if batch.status != states.DONE:
        return {}
    return results_view.field_counts(session, batch, BREAKDOWN_FIELD[batch.record_type])


def _batch_context(session: Session, user: Any, batch: Batch) -> dict[str, Any]:
    return {
        "user": user,
        "batch": batch,
        "status": views.status_view(batch),
        "parameters": views.parameters_view(batch),
        "balance": _balance(session, user.account.id, batch.record_type),
        "breakdown": _breakdown(session, batch),
        "breakdown_field": BREAKDOWN_FIELD[batch.record_type],
        "sandbox": user.account.sandbox,
        "states": states,
    }


@router.get("/batches/{batch_uuid}")
def batch_page(
    request: Request, batch_uuid: UUID, user: User, services: Svc, tx: ReadTx
) -> Response:
    batch = service.get_batch(tx, user.account.id, str(batch_uuid))
    deadline = round(services.settings.stall_deadline_seconds / 60)
    context = _batch_context(tx, user, batch) | {"stall_deadline_minutes": deadline}
    return page(request, "batch.html", context)


@router.get("/batches/{batch_uuid}/status")
def batch_status(batch_uuid: UUID, user: User, tx: ReadTx) -> dict[str, Any]:
    """What the progress bar polls: the API's status body plus a percentage."""
    body = views.status_view(service.get_batch(tx, user.account.id, str(batch_uuid)))
    progress = body.get("progress") or {}
    total = progress.get("total") or 0
    body["percent"] = round(100 * progress.get("verified", 0) / total, 1) if total else None
    if body["status"] == states.DONE:
        body["percent"] = 100.0
    return body


def _parameters_form(
    request: Request, user: Any, batch: Batch, form: UploadForm, status: int = 200, **extra: Any
) -> Response:
    context = {"user": user, "batch": batch, "form": form, **extra}
    return page(request, "parameters.html", context, status=status)


@router.get("/batches/{batch_uuid}/parameters")
def parameters_page(request: Request, batch_uuid: UUID, user: User, tx: ReadTx) -> Response:
    batch = service.get_batch(tx, user.account.id, str(batch_uuid))
    if batch.status in states.LAUNCHED:
        return RedirectResponse(f"/batches/{batch.uuid}", status_code=303)
    return _parameters_form(request, user, batch, UploadForm(values=views.parameters_view(batch)))


@router.post("/batches/{batch_uuid}/parameters")
def change_parameters(
    request: Request, batch_uuid: UUID, user: User, services: Svc, tx: WriteTx, raw: Form
) -> Response:
    """PUT's code path: store the parameters and re-parse with them."""
    batch = service.get_batch(tx, user.account.id, str(batch_uuid))
    form = read_parameters(raw)
    if form.errors or form.params is None:
        return _parameters_form(request, user, batch, form, status=400)
    try:
        service.configure(services, tx, user.account.id, batch.uuid, form.params)
    except ApexError as exc:
        tx.rollback()
        return _parameters_form(request, user, batch, form, exc.status_code, error=exc.message)
    return RedirectResponse(f"/batches/{batch.uuid}", status_code=303)


@router.get("/batches/{batch_uuid}/launch")
def launch_page(request: Request, batch_uuid: UUID, user: User, tx: ReadTx) -> Response:
    batch = service.get_batch(tx, user.account.id, str(batch_uuid))
    if batch.status != states.READY:
        return RedirectResponse(f"/batches/{batch.uuid}", status_code=303)
    return page(request, "launch.html", _batch_context(tx, user, batch))


def _confirmed(
    request: Request,
    services: Services,
    tx: Session,
    user: Any,
    batch_uuid: UUID,
    action: Callable[[Services, Session, str, str], object],
    template: str,
    then: str,
) -> Response:
    """Run a confirmed action; a refusal rolls the unit of work back and re-renders its
    confirmation page with the reason and the action's status code, having changed nothing."""
    try:
        action(services, tx, user.account.id, str(batch_uuid))
    except ApexError as exc:
        tx.rollback()
        batch = service.get_batch(tx, user.account.id, str(batch_uuid))
        context = _batch_context(tx, user, batch) | {"error": exc.message}
        return page(request, template, context, status=exc.status_code)
    return RedirectResponse(then, status_code=303)


@router.post("/batches/{batch_uuid}/launch")
def launch(
    request: Request, batch_uuid: UUID, user: User, services: Svc, tx: WriteTx, _form: Form
) -> Response:
    then = f"/batches/{batch_uuid}"
    return _confirmed(request, services, tx, user, batch_uuid, service.launch, "launch.html", then)


@router.post("/batches/{batch_uuid}/cancel")
def cancel(
    request: Request, batch_uuid: UUID, user: User, services: Svc, tx: WriteTx, _form: Form
) -> Response:
    """The batch page's "Cancel verification" button (confirmed in the browser): the API's
    ``POST /v1/batch/{uuid}/cancel``. A refusal re-renders the batch page with the reason."""
    then = f"/batches/{batch_uuid}"
    return _confirmed(request, services, tx, user, batch_uuid, service.cancel, "batch.html", then)


@router.get("/batches/{batch_uuid}/delete")
def delete_page(request: Request, batch_uuid: UUID, user: User, tx: ReadTx) -> Response:
    batch = service.get_batch(tx, user.account.id, str(batch_uuid))
    return page(request, "delete.html", _batch_context(tx, user, batch))


@router.post("/batches/{batch_uuid}/delete")
def delete(
    request: Request, batch_uuid: UUID, user: User, services: Svc, tx: WriteTx, _form: Form
) -> Response:
    action = service.delete_batch
    return _confirmed(request, services, tx, user, batch_uuid, action, "delete.html", "/")


@router.get("/batches/{batch_uuid}/export", response_model=None)
def export(
    batch_uuid: UUID,
    user: User,
    services: Svc,
    tx: ReadTx,
    format: Annotated[ExportFormat, Query()],
) -> StreamingResponse | FileResponse:
    batch = exports.exportable(tx, user.account.id, str(batch_uuid))
    return export_response(services, batch, format)
