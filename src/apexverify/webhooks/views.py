"""The JSON shapes of endpoints and deliveries (API, dashboard and CLI alike). The signing
secret is never part of them: it is shown once, by whoever created the endpoint."""

from __future__ import annotations

from typing import Any

from ..store.models import WebhookDelivery, WebhookEndpoint, iso


def endpoint_view(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": list(endpoint.events),
        "description": endpoint.description,
        "created_at": iso(endpoint.created_at),
    }


def delivery_view(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event": delivery.event_type,
        "batch_uuid": delivery.batch_uuid,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "created_at": iso(delivery.created_at),
        "next_attempt_at": iso(delivery.next_attempt_at),
        "delivered_at": iso(delivery.delivered_at),
    }
