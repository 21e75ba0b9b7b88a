"""The batch lifecycle: statuses and the allowed transitions, as data, checked in one place.

    (upload) -> parsing_content -> ready_for_verification -> verification_ongoing
                   ^   |   \\                 |                   |         \\
                   |   v    -> internal_error |                   v          -> internal_error
                   +---+---------<------------+           verification_done     (refunded)
              PUT / PATCH re-parse (until launch)      (nothing left, or ended early:
                                                        cancelled / stall deadline, the
                                                        rest unknown and refunded)

``transition`` is the only way a status changes after the upload: a compare-and-set on the
current status (and the parse generation where it matters), so two workers, a PUT racing a
parse, or a retried job can never both win.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ..errors import ApexError
from ..store.models import Batch
from .repository import batches as batch_rows


class BatchStatus(StrEnum):
    PARSING = "parsing_content"
    READY = "ready_for_verification"
    ONGOING = "verification_ongoing"
    DONE = "verification_done"
    ERROR = "internal_error"


PARSING, READY, ONGOING, DONE, ERROR = (
    BatchStatus.PARSING,
    BatchStatus.READY,
    BatchStatus.ONGOING,
    BatchStatus.DONE,
    BatchStatus.ERROR,
)

TRANSITIONS: dict[BatchStatus, frozenset[BatchStatus]] = {
    PARSING: frozenset({PARSING, READY, ERROR}),  # PARSING -> PARSING: a newer generation
    READY: frozenset({PARSING, ONGOING}),
    ERROR: frozenset({PARSING}),  # a failed parse can be re-triggered; a failed run cannot
    ONGOING: frozenset({DONE, ERROR}),
    DONE: frozenset(),
}
# Launched: parameters are frozen, no re-parse.
LAUNCHED = frozenset({ONGOING, DONE})
# Work is running: DELETE is refused.
BUSY = frozenset({PARSING, ONGOING})
# Background work is owed: the sweep re-defers it after a restart.
UNFINISHED = (PARSING, ONGOING)


class TransitionLost(ApexError):
    """The batch was no longer in the expected state (another actor moved it first)."""

    status_code = 409

    def __init__(self, batch_uuid: str, from_: BatchStatus, to: BatchStatus) -> None:
        super().__init__(f"batch {batch_uuid} is no longer {from_}; cannot move to {to}")
        self.batch_uuid, self.from_, self.to = batch_uuid, from_, to


def allowed(from_: BatchStatus, to: BatchStatus) -> bool:
    return to in TRANSITIONS[from_]


def transition(
    session: Session,
    batch: Batch,
    from_: BatchStatus,
    to: BatchStatus,
    *,
    generation: int | None = None,
    **values: Any,
) -> None:
    """Move ``batch`` from ``from_`` to ``to`` with ``values`` in the caller's transaction,
    or raise :class:`TransitionLost`. ``generation`` also requires the parse generation."""
    if not allowed(from_, to):
        raise ValueError(f"{from_} -> {to} is not a transition of the batch lifecycle")
    if not batch_rows.set_status_if(session, batch.pk, from_, to, generation=generation, **values):
        raise TransitionLost(batch.uuid, from_, to)
    # Mirror the row on the object without marking it dirty (the UPDATE already ran).
    set_committed_value(batch, "status", to)
    for name, value in values.items():
        set_committed_value(batch, name, value)
