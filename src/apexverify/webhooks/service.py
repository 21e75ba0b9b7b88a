"""Webhook use cases, called by the API, the dashboard, the CLI and the batches feature.

Each takes the caller's unit of work and never commits. ``record_event`` is called by the
batches feature inside the transaction of the state change: the delivery rows and their jobs
exist if and only if that change commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from ..jobs.base import JobQueue
from ..settings import Settings
from ..store.models import WebhookDelivery, WebhookEndpoint, utcnow
from . import addresses, repository
from .errors import EndpointNotFound, InvalidEndpoint, TooManyEndpoints
from .events import EVENT_TYPES, Event, wanted
from .signing import new_secret, seal
from .tasks import defer_delivery

MAX_ENDPOINTS = 20
MAX_DESCRIPTION = 255
DELIVERY_LOG_LIMIT = 50


@dataclass(frozen=True)
class NewEndpoint:
    """A registered endpoint and its signing secret, which is shown this once."""

    endpoint: WebhookEndpoint
    secret: str


def _events_filter(events: list[str] | None) -> list[str]:
    chosen = list(dict.fromkeys(events or []))
    unknown = [e for e in chosen if e not in EVENT_TYPES]
    if unknown:
        raise InvalidEndpoint(
            "events", f"Unknown event {unknown[0]!r}; the events are {', '.join(EVENT_TYPES)}."
        )
    return chosen


def create_endpoint(
    session: Session,
    settings: Settings,
    server_secret: bytes,
    account_id: str,
    url: str,
    *,
    events: list[str] | None = None,
    description: str = "",
) -> NewEndpoint:
    """Register ``url`` for the account's batch events (``events``: a filter, empty = all).

    Raises :class:`InvalidEndpoint` (the URL's form or address, an unknown event, a long
    description) or :class:`TooManyEndpoints`."""
    if len(description) > MAX_DESCRIPTION:
        raise InvalidEndpoint(
            "description", f"The description has at most {MAX_DESCRIPTION} characters."
        )
    chosen = _events_filter(events)
    target = addresses.check_registration(
        url, allow_private=settings.webhooks_allow_private_networks
    )
    if repository.count_endpoints(session, account_id) >= MAX_ENDPOINTS:
        raise TooManyEndpoints(
            f"An account has at most {MAX_ENDPOINTS} webhook endpoints; remove one first."
        )
    endpoint_id = str(uuid.uuid4())
    secret = new_secret()
    endpoint = WebhookEndpoint(
        id=endpoint_id,
        account_id=account_id,
        url=target.url,
        secret=seal(server_secret, endpoint_id, secret),
        events=chosen,
        description=description,
        created_at=utcnow(),
    )
    session.add(endpoint)
    session.flush()
    return NewEndpoint(endpoint, secret)


def list_endpoints(session: Session, account_id: str) -> list[WebhookEndpoint]:
    return repository.endpoints_of(session, account_id)


def get_endpoint(session: Session, account_id: str, endpoint_id: str) -> WebhookEndpoint:
    """The account's endpoint; another account's is indistinguishable from a missing one."""
    endpoint = repository.endpoint_of(session, account_id, endpoint_id)
    if endpoint is None:
        raise EndpointNotFound()
    return endpoint


def remove_endpoint(session: Session, account_id: str, endpoint_id: str) -> None:
    """Remove the endpoint and its delivery log; nothing more is sent to it, pending
    retries included."""
    if not repository.delete_endpoint(session, account_id, endpoint_id):
        raise EndpointNotFound()


def deliveries(
    session: Session, account_id: str, endpoint_id: str, limit: int = DELIVERY_LOG_LIMIT
) -> list[WebhookDelivery]:
    """The endpoint's delivery log, newest first."""
    get_endpoint(session, account_id, endpoint_id)
    return repository.deliveries_of(session, endpoint_id, limit)


def new_delivery_id() -> str:
    return "msg_" + uuid.uuid4().hex


def record_event(
    session: Session, queue: JobQueue | None, account_id: str, event: Event
) -> list[str]:
    """One pending delivery per endpoint of the account that wants ``event``, written in the
    caller's transaction, and its first attempt deferred in it. Returns the delivery ids.

    ``queue`` None (a caller with no queue at hand) only delays the first attempt: the
    deliveries sweep defers every due pending delivery that has no job."""
    ids: list[str] = []
    now = utcnow()
    payload: dict[str, Any] = event.payload()
    for endpoint in repository.active_endpoints_of(session, account_id):
        if not wanted(endpoint.events, event.type):
            continue
        delivery_id = new_delivery_id()
        session.add(
            WebhookDelivery(
                id=delivery_id,
                endpoint_id=endpoint.id,
                event_type=str(event.type),
                batch_uuid=event.batch_uuid,
                payload=payload,
                status=repository.PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
        ids.append(delivery_id)
    if ids:
        session.flush()
        if queue is not None:
            for delivery_id in ids:
                defer_delivery(queue, session, delivery_id, attempt=1)
    return ids
