"""Extension endpoints, ours and not the hosted API's: an account's webhook endpoints and
their delivery logs (``docs/webhooks.md``). Only translation: the rules live in
``apexverify/webhooks``."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError

from ...web.deps import ReadTx, Svc, WriteTx
from ...webhooks import service
from ...webhooks.errors import InvalidEndpoint
from ...webhooks.views import delivery_view, endpoint_view
from ..deps import Auth
from ..schemas import (
    NewWebhook,
    Success,
    WebhookDeliveryList,
    WebhookEndpoint,
    WebhookList,
    WebhookRequest,
    answers,
    reference_operation_id,
)

router = APIRouter(
    prefix="/v1/webhooks", tags=["webhooks"], generate_unique_id_function=reference_operation_id
)
_NO_ENDPOINT = "No webhook endpoint with this id for this account."

_CREATE_DESCRIPTION = """Extension, not part of the hosted API.

Registers a URL that receives the account's batch events (`batch.ready_for_verification`,
`batch.verification_done`, `batch.internal_error`, `batch.cancelled`; `events` filters them),
signed the Standard Webhooks way with the `secret` of this answer, which is shown only once.
A URL whose host is, or resolves to, a loopback, private, link-local or reserved address is
refused (422) unless the server allows private networks. See docs/webhooks.md."""


def _invalid(exc: InvalidEndpoint) -> RequestValidationError:
    """The domain's refusal as the API's usual 422, naming the field."""
    return RequestValidationError(
        [{"loc": ("body", exc.field), "msg": exc.message.rstrip("."), "type": "value_error"}]
    )


@router.get(
    "",
    summary="List webhook endpoints (extension)",
    response_model=None,
    responses=answers(WebhookList),
)
def list_webhooks(account: Auth, tx: ReadTx) -> dict[str, Any]:
    """Extension, not part of the hosted API. The account's endpoints, oldest first (no
    secrets)."""
    return {"webhooks": [endpoint_view(e) for e in service.list_endpoints(tx, account.id)]}


@router.post(
    "",
    summary="Add a webhook endpoint (extension)",
    description=_CREATE_DESCRIPTION,
    response_model=None,
    responses=answers(
        NewWebhook,
        400,
        409,
        422,
        notes={
            400: "The body is not readable text.",
            409: f"The account already has {service.MAX_ENDPOINTS} endpoints.",
            422: "The URL is not an http(s) URL, or its host is a private address.",
        },
    ),
)
def create_webhook(
    body: WebhookRequest, account: Auth, services: Svc, tx: WriteTx
) -> dict[str, Any]:
    try:
        new = service.create_endpoint(
            tx,
            services.settings,
            services.secret,
            account.id,
            body.url,
            events=list(body.events),
            description=body.description,
        )
    except InvalidEndpoint as exc:
        raise _invalid(exc) from None
    return {**endpoint_view(new.endpoint), "secret": new.secret}


@router.get(
    "/{webhook_id}",
    summary="A webhook endpoint (extension)",
    response_model=None,
    responses=answers(WebhookEndpoint, 404, 422, notes={404: _NO_ENDPOINT}),
)
def get_webhook(webhook_id: UUID, account: Auth, tx: ReadTx) -> dict[str, Any]:
    """Extension, not part of the hosted API."""
    return endpoint_view(service.get_endpoint(tx, account.id, str(webhook_id)))


@router.delete(
    "/{webhook_id}",
    summary="Remove a webhook endpoint (extension)",
    response_model=None,
    responses=answers(Success, 404, 422, notes={404: _NO_ENDPOINT}),
)
def delete_webhook(webhook_id: UUID, account: Auth, tx: WriteTx) -> dict[str, str]:
    """Extension, not part of the hosted API. Immediate: nothing more is sent to it, pending
    retries included; its delivery log goes with it."""
    service.remove_endpoint(tx, account.id, str(webhook_id))
    return {"message": "Removed"}


@router.get(
    "/{webhook_id}/deliveries",
    summary="A webhook endpoint's delivery log (extension)",
    response_model=None,
    responses=answers(WebhookDeliveryList, 404, 422, notes={404: _NO_ENDPOINT}),
)
def list_deliveries(
    webhook_id: UUID,
    account: Auth,
    tx: ReadTx,
    limit: Annotated[int, Query(ge=1, le=200)] = service.DELIVERY_LOG_LIMIT,
) -> dict[str, Any]:
    """Extension, not part of the hosted API. The latest deliveries, newest first: event,
    status (pending, delivered, failed), attempts, the last status code and error."""
    rows = service.deliveries(tx, account.id, str(webhook_id), limit)
    return {"deliveries": [delivery_view(d) for d in rows]}
