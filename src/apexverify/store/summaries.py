"""Read-only breakdowns of a finished batch's results, for the dashboard's charts."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import Record


def result_field_counts(session: Session, batch_pk: int, field: str) -> dict[str, int]:
    """How many verified rows carry each value of one result field (``quality`` for emails,
    ``type`` for phones), over the rows the verdict counts cover: valid-format, first
    occurrences. SQLAlchemy's JSON path compiles for SQLite and PostgreSQL alike."""
    value = Record.result[field].as_string()
    rows = session.execute(
        select(value, func.count())
        .where(Record.batch_pk == batch_pk, Record.kind == "valid", Record.verdict.is_not(None))
        .group_by(value)
    ).all()
    return {str(name or "none"): int(count) for name, count in rows}
