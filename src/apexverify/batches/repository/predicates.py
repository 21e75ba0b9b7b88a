"""The row predicates every query of the lifecycle shares, written once."""

from __future__ import annotations

import time

from sqlalchemy import ColumnElement, and_, literal_column, or_

from ...store.models import Record, RecordKind

# Inline, not a bound parameter: SQLite uses the partial index ``ix_records_unverified``
# (migration 0003) only when the query repeats its WHERE terms literally.
_VALID: ColumnElement[str] = literal_column(f"'{RecordKind.VALID.value}'")


def unverified(batch_pk: int) -> ColumnElement[bool]:
    """A valid-format first occurrence of the batch that has no verdict yet."""
    return and_(Record.batch_pk == batch_pk, Record.kind == _VALID, Record.verdict.is_(None))


def due(batch_pk: int, now: int | None = None) -> ColumnElement[bool]:
    """An unverified row whose retry time (if an engine asked for one) has come."""
    at = int(time.time()) if now is None else now
    return and_(unverified(batch_pk), or_(Record.retry_at.is_(None), Record.retry_at <= at))
