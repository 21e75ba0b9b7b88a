"""The batch endpoints of the ApexVerify v1 API (workflow guide steps 1-7, list, delete)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import ValidationError

from ...batches import exports, service, views
from ...batches.params import BatchParameters
from ...batches.sources import HeaderMode, TableRequest
from ...credits import from_milli
from ...export.decisions import parse_keep
from ...store.models import iso
from ...web.deps import ReadTx, Svc, WriteTx
from ...web.downloads import XLSX_TYPE, ExportFormat, export_response
from ...web.uploads import accept_upload
from ..deps import Auth
from ..schemas import (
    COUNTRY_CODES,
    MAX_OFFSET,
    Batch_status_v1_batch__batch_uuid__get_Response_200,
    BatchDetails,
    BatchList,
    BatchParametersBody,
    CancelResponse,
    DateTimeQuery,
    JsonExport,
    LaunchResponse,
    StatusOk,
    Success,
    UploadError,
    UploadResponse,
    answers,
    reference_operation_id,
)

router = APIRouter(
    prefix="/v1/batch", tags=["batch"], generate_unique_id_function=reference_operation_id
)
# The upload accepts every optional parameter of PUT as a form field.
_OPTIONAL_FORM_FIELDS = tuple(
    name for name in BatchParameters.model_fields if name not in ("type", "target_country")
)
_MAX_COLUMN = 255
_HEADER_MODES: tuple[HeaderMode, ...] = ("auto", "true", "false")
_LOCKED = "The batch has been launched: its parameters can no longer change."
_UNREADABLE = "The body is not readable text."


def _params_or_422(data: dict[str, Any], loc: str) -> BatchParameters:
    try:
        return BatchParametersBody.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": (loc, *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def _form_field(name: str) -> dict[str, Any]:
    """A PUT parameter as a form field of the upload: the texts its JSON schema allows
    (booleans as ``true``/``false``) and the empty string, which means "not given"."""
    schema = BatchParametersBody.model_json_schema()["properties"][name]
    texts = [""]
    for option in schema.get("anyOf", [schema]):
        if option.get("type") == "boolean":
            texts += ["true", "false"]
        texts += [text for text in option.get("enum", []) if text not in texts]
    return {
        "type": "string",
        "enum": texts,
        "description": "As in PUT /v1/batch/{batch_uuid}; empty means not given.",
    }


_TABLE_FIELDS: dict[str, dict[str, Any]] = {
    "column": {
        "type": "string",
        "maxLength": _MAX_COLUMN,
        "description": "**ApexVerify extension** (not part of the hosted ApexVerify v1 API). "
        "Non-empty: the file is a table (CSV, semicolon- or tab-separated, UTF-8 with or "
        "without BOM; XLSX or ODS, first sheet) and this names the column of the emails or "
        "phones: `auto` (found by its header name, such as Email, E-mail, Email Address, "
        "Phone, Mobile, Phone Number, else by its content), a header name (case-insensitive) "
        "or a 1-based column number. The original file is kept with its rows. Empty or "
        "absent: one entry per line, as the hosted API. See docs/input.md.",
    },
    "header": {
        "type": "string",
        "enum": ["", *_HEADER_MODES],
        "description": "**ApexVerify extension**, with `column` only: whether the first row "
        "is a header row. `auto` (the default; empty means auto) detects it.",
    },
}


def document_upload_form(document: dict[str, Any]) -> None:
    """Adds the optional form fields to the upload's schema in the OpenAPI ``document``: the
    upload reads them from the form by hand (below), so FastAPI does not see them."""
    body = document["paths"]["/v1/batch"]["post"]["requestBody"]["content"]["multipart/form-data"]
    components = document["components"]["schemas"]
    schema = components.pop(body["schema"]["$ref"].rsplit("/", 1)[1])
    for name in _OPTIONAL_FORM_FIELDS:
        schema["properties"][name] = _form_field(name)
    schema["properties"].update(_TABLE_FIELDS)
    # FastAPI's name for it, Body_upload-v-1-batch-post, says nothing to a reader.
    schema["title"] = "UploadForm"
    components["UploadForm"] = schema
    body["schema"] = {"$ref": "#/components/schemas/UploadForm"}


def _table_request(column: object, header: object) -> TableRequest | None:
    """The ``column`` / ``header`` extension fields; ``None`` (one entry per line, as the
    hosted API) when ``column`` is absent or empty."""
    errors: list[dict[str, Any]] = []
    if column is not None and not isinstance(column, str):
        errors.append({"type": "string_type", "loc": ("body", "column"), "msg": "not text"})
    elif isinstance(column, str) and len(column) > _MAX_COLUMN:
        errors.append(
            {
                "type": "string_too_long",
                "loc": ("body", "column"),
                "msg": f"String should have at most {_MAX_COLUMN} characters",
                "input": column[:40],
            }
        )
    mode = header.strip().lower() if isinstance(header, str) else header
    if mode not in (None, "", *_HEADER_MODES):
        errors.append(
            {
                "type": "enum",
                "loc": ("body", "header"),
                "msg": "Input should be 'auto', 'true' or 'false'",
                "input": header if isinstance(header, str) else "(a file)",
            }
        )
    if errors:
        raise RequestValidationError(errors)
    if not isinstance(column, str) or not column.strip():
        return None
    return TableRequest(column.strip(), mode if mode in _HEADER_MODES else "auto")


@router.post(
    "",
    summary="Upload a file",
    response_model=None,
    responses=answers(
        UploadResponse,
        400,
        413,
        422,
        507,
        models={400: UploadError},
        notes={
            400: "The file cannot be read (status parse_error): UTF-8 text, one per line; "
            "with the column extension, a table whose column cannot be found or read."
        },
    ),
)
async def upload(
    request: Request,
    account: Auth,
    services: Svc,
    tx: WriteTx,
    file: Annotated[
        UploadFile,
        File(
            description="UTF-8 text, one entry per line; with the `column` extension field, "
            "a CSV, TSV, semicolon-separated, XLSX or ODS table"
        ),
    ],
    name: Annotated[str, Form(min_length=1, max_length=255)],
    type: Annotated[Literal["email", "phone"], Form()],
    target_country: Annotated[
        str, Form(description="ISO 3166-1 alpha-2", json_schema_extra={"enum": COUNTRY_CODES})
    ],
    description: Annotated[str | None, Form(max_length=2048)] = None,
) -> dict[str, Any]:
    """Step 1: upload a list. Parsing starts at once with the upload's parameters; every
    optional parameter of PUT is also accepted as a form field (empty means not given).

    **ApexVerify extension**: with a non-empty `column` form field the file is a CSV, TSV,
    semicolon-separated, XLSX or ODS table (optional `header`: `auto`, `true`, `false`);
    the values of that column are the entries, the original file is kept. Without it, the
    upload is the hosted API's: UTF-8 text, one entry per line, a CSV refused with
    `parse_error`."""
    form = await request.form()
    data: dict[str, Any] = {"type": type, "target_country": target_country}
    for field in _OPTIONAL_FORM_FIELDS:
        value = form.get(field)
        if isinstance(value, str) and value != "":
            data[field] = value
    params = _params_or_422(data, "body")
    batch = await accept_upload(
        services,
        tx,
        account.id,
        file,
        name=name,
        description=description,
        params=params,
        table=_table_request(form.get("column"), form.get("header")),
    )
    return {"status": "ok", "batch_uuid": batch.uuid, "created_at": iso(batch.created_at)}


@router.get("", summary="List batches", response_model=None, responses=answers(BatchList, 422))
def list_batches(
    account: Auth,
    tx: ReadTx,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    created_after: Annotated[DateTimeQuery, Query()] = None,
    created_before: Annotated[DateTimeQuery, Query()] = None,
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


@router.put(
    "/{batch_uuid}",
    summary="Configure parameters",
    response_model=None,
    responses=answers(Success, 400, 404, 422, notes={400: f"{_LOCKED} Or: {_UNREADABLE}"}),
)
def configure(
    batch_uuid: UUID, body: BatchParametersBody, account: Auth, services: Svc, tx: WriteTx
) -> dict[str, str]:
    """Step 2: set parameters. The batch is re-parsed with them (status parsing_content), so
    the cost shown before launch is always the cost of the current parameters."""
    service.configure(services, tx, account.id, str(batch_uuid), body)
    return {"message": "Success"}


@router.patch(
    "/{batch_uuid}",
    summary="Trigger parsing",
    response_model=None,
    responses=answers(
        StatusOk, 400, 404, 422, notes={400: f"{_LOCKED} Or: the file is no longer stored."}
    ),
)
def trigger_parse(batch_uuid: UUID, account: Auth, services: Svc, tx: WriteTx) -> dict[str, str]:
    """Step 3: (re-)parse with the current parameters. Idempotent; refused once launched."""
    service.trigger_parse(services, tx, account.id, str(batch_uuid))
    return {"status": "ok"}


@router.get(
    "/{batch_uuid}/details",
    summary="Batch details",
    response_model=None,
    responses=answers(BatchDetails, 404, 422),
)
def details(batch_uuid: UUID, account: Auth, tx: ReadTx) -> dict[str, Any]:
    """Step 4: the Base / Pending / Final shape according to the status."""
    return views.details_view(service.get_batch(tx, account.id, str(batch_uuid)))


@router.post(
    "/{batch_uuid}",
    summary="Launch verification",
    response_model=None,
    responses=answers(LaunchResponse, 402, 404, 422),
)
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
    response_model=None,
    responses=answers(
        CancelResponse,
        404,
        409,
        422,
        notes={
            404: "No such batch for this account.",
            409: "The batch is not running; the message says why.",
        },
    ),
)
def cancel(batch_uuid: UUID, account: Auth, services: Svc, tx: WriteTx) -> dict[str, Any]:
    cancelled = service.cancel(services, tx, account.id, str(batch_uuid))
    return {
        "status": "ok",
        "records_cancelled": cancelled.records,
        "refunded_credits": from_milli(cancelled.refunded_milli),
    }


@router.get(
    "/{batch_uuid}",
    summary="Batch Status",
    response_model=None,
    # The reference's own list, 400 included, though this server never answers it here (403:
    # a publishable key, as on every operation).
    responses=answers(
        Batch_status_v1_batch__batch_uuid__get_Response_200,
        400,
        403,
        404,
        422,
        description="Successful Response",
    ),
)
def status(batch_uuid: UUID, account: Auth, tx: ReadTx) -> dict[str, Any]:
    """Step 6: the lightweight status, one variant of the reference's oneOf."""
    return views.status_view(service.get_batch(tx, account.id, str(batch_uuid)))


KEEP_DESCRIPTION = (
    "ApexVerify extension: keep only the rows of these decisions, a comma list of "
    "deliverable, risky, undeliverable, unknown (docs/export.md has the table from the "
    "verdict and quality). Applies to json, xlsx and csv, merged or not."
)
_DECISION = "(deliverable|risky|undeliverable|unknown)"
KEEP_PATTERN = rf"^({_DECISION}(,{_DECISION})*)?$"
MERGE_DESCRIPTION = (
    "ApexVerify extension: the original uploaded file (every column and row, in order) with "
    "the result columns appended. csv defaults to true, xlsx to false (the documented "
    "workbook); ignored for json."
)


@router.get(
    "/{batch_uuid}/export",
    summary="Export results",
    response_model=None,
    responses=answers(
        JsonExport,
        400,
        404,
        422,
        507,
        notes={
            400: "The batch is not verification_done yet.",
            422: "A bad parameter, such as an unknown decision in keep.",
        },
        description="JSON keyed by the original value (format=json), an XLSX workbook "
        "(format=xlsx) or, an ApexVerify extension, CSV (format=csv)",
        content={
            XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    ),
)
def export(
    batch_uuid: UUID,
    account: Auth,
    services: Svc,
    tx: ReadTx,
    format: Annotated[ExportFormat, Query()],
    include_details: bool = True,
    include_statistics: bool = True,
    keep: Annotated[
        str | None,
        # The pattern is documented, and checked below so a 422 names the allowed values.
        Query(
            description=KEEP_DESCRIPTION,
            max_length=200,
            json_schema_extra={"pattern": KEEP_PATTERN},
        ),
    ] = None,
    merge: Annotated[bool | None, Query(description=MERGE_DESCRIPTION)] = None,
) -> StreamingResponse | FileResponse:
    """Step 7: JSON keyed by the original value (streamed) or an XLSX workbook.

    ApexVerify extensions (without them the responses are the documented ones):
    `format=csv`, `keep=deliverable,risky` (only the rows of those decisions) and
    `merge=true|false` (the original file with the result columns appended)."""
    try:
        wanted = parse_keep(keep)
        if keep is not None and not re.fullmatch(KEEP_PATTERN, keep):
            raise ValueError(
                "keep is a comma list of deliverable, risky, undeliverable, unknown "
                "(lower case, no spaces)"
            )
    except ValueError as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "keep"), "msg": str(exc), "input": keep}]
        ) from None
    batch = exports.exportable(tx, account.id, str(batch_uuid))
    return export_response(
        services,
        batch,
        format,
        details=include_details,
        statistics=include_statistics,
        keep=wanted,
        merge=merge,
    )


@router.delete(
    "/{batch_uuid}",
    summary="Delete a batch",
    response_model=None,
    responses=answers(
        Success, 400, 404, 422, notes={400: "The batch is being parsed or verified."}
    ),
)
def delete(batch_uuid: UUID, account: Auth, services: Svc, tx: WriteTx) -> dict[str, str]:
    """Irreversible: removes the file and the results. Refused while parsing or verifying."""
    service.delete_batch(services, tx, account.id, str(batch_uuid))
    return {"message": "Deleted"}
