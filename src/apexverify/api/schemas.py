"""The documented shapes of the v1 API: request bodies, and every response an operation gives.

Response models here only *document*: the endpoints keep returning the dicts of
``batches/views.py`` (``response_model=None``), so declaring a model never filters or reshapes
an answer. Tests validate real answers against this document (Schemathesis) and the status
schema against the reference's (``tests/api/test_openapi.py``).

Names follow the reference (``docs/spec/batch-status-reference.md``) where it has them: the
status ``oneOf`` and its parts, ``HTTPValidationError`` and ``ValidationError``. Status and
details objects allow additional properties, like the reference's: fields beyond it are
additive, and the ones this server adds are declared below as extensions.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    WithJsonSchema,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from ..batches.countries import ISO_COUNTRIES
from ..batches.params import BatchParameters, UnitRequest
from ..batches.states import BatchStatus
from ..verify.base import EMAIL_QUALITIES, EMAIL_RESULTS, PHONE_STATUSES, PHONE_TYPES

EXTENSION = "Extension, not part of the hosted API."
RecordType = Literal["email", "phone"]
# Offsets are bound by what the database can hold (a signed 64-bit integer).
MAX_OFFSET = 2**63 - 1

# --- Inputs ---------------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})\Z"
)


def _rfc3339(value: Any) -> datetime | None:
    """A real RFC 3339 date-time with its offset, as an aware UTC datetime (None stays None).
    Pydantic's own parsing also takes bare numbers (``0.5`` as a Unix time) and date-times
    without an offset, which the documented ``format: date-time`` does not allow."""
    if value is None:
        return None
    match = _RFC3339.match(value) if isinstance(value, str) else None
    if match is None:
        raise PydanticCustomError(
            "rfc3339", "Input should be an RFC 3339 date-time such as 2026-04-06T10:00:00Z"
        )
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micro = (fraction or ".0")[1:7].ljust(6, "0")  # more digits than microseconds are cut
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        parsed = datetime.fromisoformat(f"{year}-{month}-{day}T{hour}:{minute}:{second}.{micro}")
        return parsed.replace(tzinfo=_offset(offset)).astimezone(UTC)
    except (ValueError, OverflowError):  # 2026-02-30, 25:00, or out of range once in UTC
        raise PydanticCustomError(
            "rfc3339", "Input should be an existing date and time, in years 1 to 9999"
        ) from None


def _offset(text: str) -> timezone:
    sign = -1 if text[0] == "-" else 1
    return timezone(sign * timedelta(hours=int(text[1:3]), minutes=int(text[4:6])))


# Optional, as the list's filters are; the schema says only what a client may send.
DateTimeQuery = Annotated[
    datetime | None,
    BeforeValidator(_rfc3339),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


def _code_validator(top: int) -> BeforeValidator:
    """A code field of the guide (1..top) as an integer, or as the string of one: integrations
    send ``"1"`` as well as ``1`` (``docs/spec/reference-notes.md``). Booleans, fractions and
    other spellings (``" 1"``, ``"01"``, ``"1.0"``) are refused, as the schema says."""
    strings = frozenset(str(n) for n in range(1, top + 1))

    def refuse() -> PydanticCustomError:
        return PydanticCustomError(
            "code", "Input should be an integer from 1 to {top}, or its string", {"top": top}
        )

    def check(value: Any) -> Any:
        if isinstance(value, bool):
            raise refuse()
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)  # JSON Schema counts 3.0 as the integer 3
        if isinstance(value, str):
            if value not in strings:
                raise refuse()
            return int(value)
        return value  # an int, or something the int type below refuses

    return BeforeValidator(check)


def _code_schema(top: int) -> WithJsonSchema:
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": top},
                {"type": "string", "enum": [str(n) for n in range(1, top + 1)]},
            ]
        }
    )


Audience = Annotated[int, Field(ge=1, le=23), _code_validator(23), _code_schema(23)]
Industry = Annotated[int, Field(ge=1, le=115), _code_validator(115), _code_schema(115)]
Objective = Annotated[int, Field(ge=1, le=16), _code_validator(16), _code_schema(16)]
Backoff = Annotated[int, Field(ge=1, le=180), _code_validator(180), _code_schema(180)]


def _flag(value: Any) -> Any:
    """``true``/``false``, or their strings as form fields and some integrations send them;
    not ``1``, ``"yes"`` or ``"on"``, which pydantic's lax booleans would take."""
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise PydanticCustomError("flag", "Input should be true or false")


Flag = Annotated[
    bool,
    BeforeValidator(_flag),
    WithJsonSchema({"anyOf": [{"type": "boolean"}, {"type": "string", "enum": ["true", "false"]}]}),
]

COUNTRY_CODES = sorted(ISO_COUNTRIES)
Country = Annotated[
    str,
    Field(
        description="ISO 3166-1 alpha-2 (case-insensitive).",
        json_schema_extra={"enum": COUNTRY_CODES},
    ),
]


class _StrictTargeting(BaseModel):
    """The targeting fields as the API takes them (JSON bodies and the upload's form fields):
    every accepted spelling is one the schema documents, so a client generated from it and
    Schemathesis agree with the server."""

    target_audience: Audience | None = None
    target_market_industry: Industry | None = None
    target_objective: Objective | None = None
    use_account_cache: Flag = True
    max_account_cache_backoff: Backoff = 30
    use_global_cache: Flag = True
    max_global_cache_backoff: Backoff = 30


class BatchParametersBody(_StrictTargeting, BatchParameters):
    """The body of ``PUT /v1/batch/{batch_uuid}``: ``BatchParameters`` with the JSON types
    the guide documents. Only ``type`` and ``target_country`` are required."""

    target_country: Country
    remove_duplicate: Flag = True
    remove_wrong_email_format: Flag = True
    remove_wrong_phone_format: Flag = True


class UnitBody(_StrictTargeting, UnitRequest):
    """The body of ``POST /v1/unit``: one email or phone and the targeting of a batch."""

    target_country: Country = "US"


class KeyRequest(BaseModel):
    label: str = Field(default="", max_length=255, description="A name to recognise the key.")


# --- Errors ---------------------------------------------------------------------------------


class Error(BaseModel):
    """Every error but 422: one human-readable sentence."""

    message: str


class UploadError(BaseModel):
    """A 400 of the upload: a file that cannot be read carries ``status: parse_error``."""

    message: str
    status: Literal["parse_error"] = "parse_error"


class ValidationError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str
    input: Any = Field(
        default=None,
        description="The value refused, as JSON. A NaN or infinite number is echoed as the "
        'string "NaN", "Infinity" or "-Infinity"; long values are cut.',
    )
    ctx: dict[str, Any] = Field(default_factory=dict)


class HTTPValidationError(BaseModel):
    detail: list[ValidationError]
    message: str = Field(description="One sentence naming every field refused and why.")


# --- The status oneOf of the reference ------------------------------------------------------


def _one_of(schema: dict[str, Any]) -> None:
    # A plain Union is an anyOf; the reference says oneOf (a summary is email or phone).
    schema["oneOf"] = schema.pop("anyOf")


class BatchSetupVerificationParsingEmail(BaseModel):
    # Closed, as the tests read the reference: otherwise any object matches both summaries
    # and a oneOf over them can never hold.
    model_config = ConfigDict(extra="forbid")

    valid_email: int = 0
    wrong_email: int = 0
    duplicate_email: int = 0


class BatchSetupVerificationParsingPhone(BaseModel):
    model_config = ConfigDict(extra="forbid")

    valid_phone: int = 0
    wrong_phone: int = 0
    duplicate_phone: int = 0


class BatchSetupVerificationCostEmail(BaseModel):
    total_email_cost: int
    net_email_cost: float
    email_cache_account_return: int
    email_cache_global_return: int


class BatchSetupVerificationCostPhone(BaseModel):
    total_phone_cost: int
    net_phone_cost: float
    phone_cache_account_return: int
    phone_cache_global_return: int


class FoundContent(
    RootModel[BatchSetupVerificationParsingEmail | BatchSetupVerificationParsingPhone]
):
    """The parsing summary: the email one or the phone one."""

    model_config = ConfigDict(json_schema_extra=_one_of)


class FoundCost(RootModel[BatchSetupVerificationCostEmail | BatchSetupVerificationCostPhone]):
    """The cost: the email one or the phone one."""

    model_config = ConfigDict(json_schema_extra=_one_of)


# The reference names one summary and one cost per variant; same shapes, its names.
class V1BatchBatchUuidGetResponsesContentApplicationJsonSchemaDiscriminatorMappingReadyForVerificationFoundContent(  # noqa: E501
    FoundContent
):
    pass


class V1BatchBatchUuidGetResponsesContentApplicationJsonSchemaDiscriminatorMappingReadyForVerificationFoundCost(  # noqa: E501
    FoundCost
):
    pass


class V1BatchBatchUuidGetResponsesContentApplicationJsonSchemaDiscriminatorMappingVerificationOngoingFoundContent(  # noqa: E501
    FoundContent
):
    pass


class V1BatchBatchUuidGetResponsesContentApplicationJsonSchemaDiscriminatorMappingVerificationOngoingFoundCost(  # noqa: E501
    FoundCost
):
    pass


class V1BatchBatchUuidGetResponsesContentApplicationJsonSchemaDiscriminatorMappingVerificationDoneFoundContent(  # noqa: E501
    FoundContent
):
    pass


class V1BatchBatchUuidGetResponsesContentApplicationJsonSchemaDiscriminatorMappingVerificationDoneFoundCost(  # noqa: E501
    FoundCost
):
    pass


class VerificationStats(BaseModel):
    total_verification: int | None = 0
    total_verification_valid: int | None = 0
    total_verification_wrong: int | None = 0
    total_verification_unknown: int | None = 0
    total_verification_duplicate: int | None = 0
    total_verification_account_cache: int | None = 0
    total_verification_global_cache: int | None = 0
    total_verification_valid_perc: float | None = 0
    total_verification_wrong_perc: float | None = 0
    total_verification_unknown_perc: float | None = 0
    total_verification_account_cache_perc: float | None = 0
    total_verification_global_cache_perc: float | None = 0


class Progress(BaseModel):
    verified: int = Field(description="Records verified so far.")
    total: int = Field(description="Records to verify.")


class Stall(BaseModel):
    reason: str
    since: datetime
    retry_at: datetime | None


def _extension(description: str = EXTENSION) -> Any:
    return Field(default=None, description=description)


class _Running(BaseModel):
    progress: Progress | SkipJsonSchema[None] = _extension()
    stall: Stall | None = _extension(
        f"{EXTENSION} Why the batch cannot move forward and when it tries again; null while "
        "it moves."
    )
    execution_cost: float | SkipJsonSchema[None] = _extension(
        f"{EXTENSION} Credits debited at launch."
    )
    refunded_credits: float | SkipJsonSchema[None] = _extension(
        f"{EXTENSION} Credits given back so far."
    )


class _Finished(BaseModel):
    execution_cost: float | SkipJsonSchema[None] = _extension(
        f"{EXTENSION} Credits debited at launch."
    )
    refunded_credits: float | SkipJsonSchema[None] = _extension(
        f"{EXTENSION} Credits given back (refunds of unknown results or of a failed run)."
    )
    cancelled: bool | SkipJsonSchema[None] = _extension(
        f"{EXTENSION} The batch was cancelled before every record was verified."
    )
    cancelled_at: datetime | None = _extension(f"{EXTENSION} When it was cancelled.")


class ParsingContentStatus(BaseModel):
    """parsing_content variant"""

    status: Literal["parsing_content"]


class ReadyForVerificationStatus(BaseModel):
    """ready_for_verification variant"""

    status: Literal["ready_for_verification"]
    found_content: V1BatchBatchUuidGetResponsesContentApplicationJsonSchemaDiscriminatorMappingReadyForVerificationFoundContent  # noqa: E501
    found_cost: V1BatchBatchUuidGetResponsesContentApplicationJsonSchemaDiscriminatorMappingReadyForVerificationFoundCost  # noqa: E501


class VerificationOngoingStatus(_Running):
    """verification_ongoing variant"""

    status: Literal["verification_ongoing"]
    found_content: V1BatchBatchUuidGetResponsesContentApplicationJsonSchemaDiscriminatorMappingVerificationOngoingFoundContent  # noqa: E501
    found_cost: V1BatchBatchUuidGetResponsesContentApplicationJsonSchemaDiscriminatorMappingVerificationOngoingFoundCost  # noqa: E501


class VerificationDoneStatus(_Finished):
    """verification_done variant"""

    status: Literal["verification_done"]
    found_content: V1BatchBatchUuidGetResponsesContentApplicationJsonSchemaDiscriminatorMappingVerificationDoneFoundContent  # noqa: E501
    found_cost: V1BatchBatchUuidGetResponsesContentApplicationJsonSchemaDiscriminatorMappingVerificationDoneFoundCost  # noqa: E501
    stats: VerificationStats


class InternalErrorStatus(_Finished):
    """internal_error variant"""

    status: Literal["internal_error"]
    message: str


class Batch_status_v1_batch__batch_uuid__get_Response_200(  # the reference's name
    RootModel[
        Annotated[
            ParsingContentStatus
            | ReadyForVerificationStatus
            | VerificationOngoingStatus
            | VerificationDoneStatus
            | InternalErrorStatus,
            Field(discriminator="status"),
        ]
    ]
):
    """The lightweight status: exactly one variant, by ``status``."""


# --- Details, list, the other answers -------------------------------------------------------


class _DetailsBase(BaseModel):
    batch_uuid: UUID
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime
    parameters: BatchParameters


class BaseBatchDetailsModelResponse(_DetailsBase):
    """parsing_content / internal_error"""

    status: Literal["parsing_content", "internal_error"]
    message: str | SkipJsonSchema[None] = Field(
        default=None, description="Why the batch failed (internal_error only)."
    )


class PendingBatchDetailsModelResponse(_Running, _DetailsBase):
    """ready_for_verification / verification_ongoing"""

    status: Literal["ready_for_verification", "verification_ongoing"]
    found_content: FoundContent
    found_cost: FoundCost


class FinalBatchDetailsModelResponse(_Finished, _DetailsBase):
    """verification_done"""

    status: Literal["verification_done"]
    found_content: FoundContent
    found_cost: FoundCost
    stats: VerificationStats


class BatchDetails(
    RootModel[
        Annotated[
            BaseBatchDetailsModelResponse
            | PendingBatchDetailsModelResponse
            | FinalBatchDetailsModelResponse,
            Field(discriminator="status"),
        ]
    ]
):
    """The Base / Pending / Final shape, by ``status``."""


class UploadResponse(BaseModel):
    status: Literal["ok"]
    batch_uuid: UUID
    created_at: datetime


class BatchListItem(BaseModel):
    batch_uuid: UUID
    name: str
    description: str | None
    status: BatchStatus
    type: RecordType
    target_country: str
    created_at: datetime
    updated_at: datetime
    found_content: FoundContent | SkipJsonSchema[None] = Field(
        default=None, description="Once parsed (ready, ongoing, done)."
    )
    found_cost: FoundCost | SkipJsonSchema[None] = Field(
        default=None, description="Once parsed (ready, ongoing, done)."
    )


class BatchList(BaseModel):
    batches: list[BatchListItem]
    total: int = Field(description="Batches matching the filters, over every page.")
    offset: int
    limit: int


class Success(BaseModel):
    message: str


class StatusOk(BaseModel):
    status: Literal["ok"]


class LaunchResponse(BaseModel):
    status: Literal[
        "ok",
        "not_ready_for_verification",
        "verification_already_ongoing",
        "verification_already_done",
    ]


class CancelResponse(BaseModel):
    """Extension, not part of the hosted API: the answer of ``POST .../cancel``."""

    status: Literal["ok"]
    records_cancelled: int = Field(description="Records not verified, ended unknown.")
    refunded_credits: float = Field(description="The batch's whole refund.")


class Credits(BaseModel):
    email_credit: float
    phone_credit: float


class KeySummary(BaseModel):
    id: str
    label: str
    prefix: str = Field(description="The first characters of the key, to recognise it.")
    created_at: datetime | None
    revoked_at: datetime | None
    kind: Literal["secret", "publishable"] = Field(
        description="Extension. secret: every endpoint, servers only. publishable: "
        "POST /v1/unit only, from a web page on one of allowed_origins."
    )
    public_key: str | None = Field(
        description="Extension. A publishable key in full (it is written into web pages); "
        "null for a secret key, whose value is shown only once."
    )
    allowed_origins: list[str] = Field(
        description="Extension. The origins (scheme://host[:port]) a publishable key may "
        "be used from; empty for a secret key."
    )


class KeyList(BaseModel):
    keys: list[KeySummary]


class NewKey(BaseModel):
    id: str
    api_key: str = Field(description="The secret, shown this once.")
    label: str


def _one_of_values(values: tuple[str, ...]) -> Any:
    return Field(json_schema_extra={"enum": list(values)})


class EmailResult(BaseModel):
    """One email's result. Engines may add fields after the documented ones."""

    email: str
    valid: bool
    wrong: bool
    unknown: bool
    quality: str = _one_of_values(EMAIL_QUALITIES)
    result: str = _one_of_values(EMAIL_RESULTS)
    is_syntax_error: bool
    is_free: bool
    is_role: bool
    is_disposable: bool
    is_catch_all: bool


class PhoneResult(BaseModel):
    """One phone number's result. Engines may add fields after the documented ones."""

    phone: str
    valid: bool
    wrong: bool
    unknown: bool
    type: str = _one_of_values(PHONE_TYPES)
    status: str = _one_of_values(PHONE_STATUSES)
    is_syntax_error: bool
    is_ported: bool
    current_network_mcc: str | None
    current_network_mnc: str | None
    operator: str | None


class UnitResult(RootModel[EmailResult | PhoneResult]):
    """The same object as one row of the JSON export."""


class ExportRecord(BaseModel):
    """A row of the JSON export: the value, the verdict and (with ``include_details``, once
    verified) every field of ``EmailResult`` or ``PhoneResult``."""

    valid: bool
    wrong: bool
    unknown: bool


class ExportStatistics(BaseModel):
    batch_uuid: UUID
    name: str
    found_content: FoundContent
    found_cost: FoundCost
    stats: VerificationStats


class JsonExport(BaseModel):
    """An object keyed by the original value; ``_statistics`` with ``include_statistics``."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, ExportRecord] = Field(init=False)

    statistics: ExportStatistics | SkipJsonSchema[None] = Field(default=None, alias="_statistics")


# --- Webhooks (extension, docs/webhooks.md) -------------------------------------------------

WebhookEvent = Literal[
    "batch.ready_for_verification",
    "batch.verification_done",
    "batch.internal_error",
    "batch.cancelled",
]


class WebhookRequest(BaseModel):
    """Extension, not part of the hosted API: a new webhook endpoint."""

    url: str = Field(
        min_length=1,
        max_length=2048,
        json_schema_extra={"format": "uri"},
        description="An https:// (or http://) URL. Its host must be a public address unless "
        "the server allows private networks; redirects are not followed.",
    )
    events: list[WebhookEvent] = Field(
        default_factory=list, description="The events sent to it; empty or absent: all."
    )
    description: str = Field(default="", max_length=255)


class WebhookEndpoint(BaseModel):
    """Extension, not part of the hosted API: a webhook endpoint (its secret is shown only at
    creation)."""

    id: UUID
    url: str
    events: list[WebhookEvent] = Field(description="Empty: every event.")
    description: str
    created_at: datetime


class NewWebhook(WebhookEndpoint):
    secret: str = Field(
        description="The signing secret (whsec_...), shown this once: keep it to verify "
        "the webhook-signature header."
    )


class WebhookList(BaseModel):
    webhooks: list[WebhookEndpoint]


class WebhookDelivery(BaseModel):
    id: str = Field(description="The webhook-id header: the same on every attempt.")
    event: WebhookEvent
    batch_uuid: UUID | None
    status: Literal["pending", "delivered", "failed"]
    attempts: int = Field(ge=0)
    last_status_code: int | None = Field(description="The last attempt's HTTP status.")
    last_error: str | None = Field(description="Why the last attempt failed.")
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="Pending: when it is tried again.")
    delivered_at: datetime | None


class WebhookDeliveryList(BaseModel):
    deliveries: list[WebhookDelivery] = Field(description="Newest first.")


# --- Operations: ids and the answers each one documents -------------------------------------

_ANSWERS: dict[int, tuple[type[BaseModel], str]] = {
    400: (Error, "Bad Request"),
    401: (Error, "Unauthorized: the X-API-Key header is missing, unknown or revoked"),
    402: (Error, "Payment Required: not enough credits"),
    403: (
        Error,
        "Forbidden: a publishable key (apx_pub_...) works only for POST /v1/unit, from an "
        "origin it lists",
    ),
    404: (Error, "Not Found"),
    409: (Error, "Conflict"),
    413: (Error, "Payload Too Large"),
    422: (HTTPValidationError, "Validation Error"),
    429: (Error, "Too Many Requests: wait Retry-After seconds"),
    500: (Error, "Internal Server Error"),
    507: (Error, "Insufficient Storage: the server's disk is full; nothing was stored"),
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds until a request is allowed again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
}


def answers(
    ok: Any,
    *errors: int,
    notes: dict[int, str] | None = None,
    models: dict[int, type[BaseModel]] | None = None,
    **ok_extra: Any,
) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a v1 operation: ``ok`` (its 200 model, documentation only) and
    ``errors``, plus 401, 403 (a publishable key), 429 and 500, which every authenticated
    operation can answer. ``notes`` says when this operation gives a status, ``models``
    replaces the body of one, ``ok_extra`` adds to the 200 (``description``, other
    ``content`` types)."""
    documented: dict[int | str, dict[str, Any]] = {200: {"model": ok, **ok_extra}}
    for code in sorted({*errors, 401, 403, 429, 500}):
        model, description = _ANSWERS[code]
        note = (notes or {}).get(code)
        documented[code] = {
            "model": (models or {}).get(code, model),
            "description": f"{description}. {note}" if note else description,
        }
    documented[429]["headers"] = _RETRY_AFTER
    return documented


def reference_operation_id(route: Any) -> str:
    """Operation ids in the reference's spelling: ``status_v1_batch__batch_uuid__get``, as
    FastAPI would name it, becomes ``status-v-1-batch-batch-uuid-get``."""
    method = sorted(route.methods)[0].lower()
    words = re.findall(r"[a-z]+|[0-9]+", f"{route.name} {route.path_format} {method}".lower())
    return "-".join(words)
