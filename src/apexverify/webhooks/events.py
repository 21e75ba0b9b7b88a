"""The events a webhook endpoint can receive, and the body of every delivery.

The body follows the Standard Webhooks shape: ``{"type", "timestamp", "data"}``. ``data`` is
what the batches feature gives (the batch's uuid, name, status and the figures of its status
endpoint); this package only carries it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    READY = "batch.ready_for_verification"
    DONE = "batch.verification_done"
    ERROR = "batch.internal_error"
    CANCELLED = "batch.cancelled"


EVENT_TYPES: tuple[str, ...] = tuple(EventType)


@dataclass(frozen=True)
class Event:
    """Something that happened to a batch: its type, the batch, and the receiver's data."""

    type: EventType
    batch_uuid: str
    data: dict[str, Any]
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def payload(self) -> dict[str, Any]:
        return {
            "type": str(self.type),
            "timestamp": self.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "data": self.data,
        }


def wanted(filter_: list[str], event_type: str) -> bool:
    """Does an endpoint with this events filter receive ``event_type``? (Empty: every one.)"""
    return not filter_ or event_type in filter_
