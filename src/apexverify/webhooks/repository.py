"""All SQL over webhook endpoints and deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from ..store.db import affected
from ..store.models import WebhookDelivery, WebhookEndpoint

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


def count_endpoints(session: Session, account_id: str) -> int:
    query = select(func.count()).where(WebhookEndpoint.account_id == account_id)
    return int(session.scalar(query) or 0)


def endpoints_of(session: Session, account_id: str) -> list[WebhookEndpoint]:
    query = (
        select(WebhookEndpoint)
        .where(WebhookEndpoint.account_id == account_id)
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    )
    return list(session.scalars(query))


def active_endpoints_of(session: Session, account_id: str) -> list[WebhookEndpoint]:
    return [e for e in endpoints_of(session, account_id) if e.disabled_at is None]


def endpoint_of(session: Session, account_id: str, endpoint_id: str) -> WebhookEndpoint | None:
    query = select(WebhookEndpoint).where(
        WebhookEndpoint.id == endpoint_id, WebhookEndpoint.account_id == account_id
    )
    return session.scalars(query).first()


def delete_endpoint(session: Session, account_id: str, endpoint_id: str) -> bool:
    """Remove the endpoint; its deliveries go with it (ON DELETE CASCADE)."""
    # The deliveries first: SQLite enforces the cascade only with foreign keys on, and a
    # database opened without them must not keep orphans either.
    owned = select(WebhookEndpoint.id).where(
        WebhookEndpoint.id == endpoint_id, WebhookEndpoint.account_id == account_id
    )
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id.in_(owned)))
    gone = delete(WebhookEndpoint).where(
        WebhookEndpoint.id == endpoint_id, WebhookEndpoint.account_id == account_id
    )
    return affected(session, gone) > 0


def deliveries_of(session: Session, endpoint_id: str, limit: int) -> list[WebhookDelivery]:
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def delivery(session: Session, delivery_id: str) -> tuple[WebhookDelivery, WebhookEndpoint] | None:
    query = (
        select(WebhookDelivery, WebhookEndpoint)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.id == delivery_id)
    )
    row = session.execute(query).first()
    return None if row is None else (row[0], row[1])


def record_attempt(session: Session, delivery_id: str, attempts: int, **values: Any) -> bool:
    """Write attempt ``attempts`` of a pending delivery (a compare-and-set on the attempt
    count: a doubled job cannot write the same attempt twice)."""
    statement = (
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == PENDING,
            WebhookDelivery.attempts == attempts - 1,
        )
        .values(attempts=attempts, **values)
    )
    return affected(session, statement) > 0


def due_pending(session: Session, now: datetime, limit: int) -> list[tuple[str, int]]:
    """Pending deliveries of enabled endpoints whose next attempt is due: ``(id, attempts
    so far)``. (A disabled endpoint's deliveries wait: its job would only skip them.)"""
    query = (
        select(WebhookDelivery.id, WebhookDelivery.attempts)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookDelivery.status == PENDING,
            WebhookDelivery.next_attempt_at <= now,
            WebhookEndpoint.disabled_at.is_(None),
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
    )
    return [(row[0], int(row[1])) for row in session.execute(query)]
