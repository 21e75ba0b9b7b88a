"""SQL of the dashboard's results table: one page of a batch's result rows, keyset-paged over
the (batch_pk, seq) key, filtered by the same :class:`~apexverify.export.filters.ResultFilter`
the filtered exports apply row by row (``ResultFilter.matches``).

The filter becomes a WHERE clause: the decision table (``export/decisions.py``) is read row by
row into SQL, quality and flags come out of the ``result`` JSON (``json_extract`` on SQLite,
``->>`` on PostgreSQL, both through SQLAlchemy's JSON paths), the search is a
case-insensitive ``LIKE``/``ILIKE`` on the uploaded value.

A page scans at most ``scan`` seqs from where it starts (a bounded range of the unique
index), so a filter that matches little or nothing costs the same as one that matches every
row: the page says where it stopped and the next request goes on from there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Select, Text, and_, false, func, or_, select, true
from sqlalchemy import cast as cast_sql
from sqlalchemy.orm import Session

from ...export.decisions import Decision, table
from ...export.filters import ResultFilter
from ...store.models import Record


@dataclass(frozen=True)
class ResultRow:
    seq: int
    value: str
    result: dict[str, Any] | None


@dataclass(frozen=True)
class Window:
    """The rows of one page and the seq range actually examined (``first``..``last``,
    inclusive). ``complete`` is False when the scan cap stopped the page short."""

    rows: list[ResultRow]
    first: int
    last: int
    complete: bool


def _quality() -> ColumnElement[str]:
    quality: ColumnElement[str] = Record.result["quality"].as_string()
    return quality


def _verdict_row(verdict: str, quality: str | None) -> ColumnElement[bool]:
    """One row of the decision table as a condition (quality None: any quality)."""
    condition = Record.verdict == verdict
    if quality is None:
        return condition
    return and_(condition, func.coalesce(_quality(), "") == quality)


def decision_condition(record_type: str, wanted: frozenset[Decision]) -> ColumnElement[bool]:
    """Rows whose decision is in ``wanted``: the first matching row of the table wins, as in
    :func:`~apexverify.export.decisions.decision`, so each row's condition excludes the rows
    above it. A row without a verdict (not verified yet) has no decision."""
    terms: list[ColumnElement[bool]] = []
    earlier: list[ColumnElement[bool]] = []
    for verdict, quality, outcome in table(record_type):
        row = _verdict_row(verdict, quality)
        if outcome in wanted:
            terms.append(and_(row, *[~e for e in earlier]))
        earlier.append(row)
    if not terms:
        return false()
    return and_(Record.verdict.is_not(None), or_(*terms))


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def filter_conditions(
    dialect: str, record_type: str, wanted: ResultFilter
) -> list[ColumnElement[bool]]:
    """The WHERE terms of ``wanted`` (empty: every row)."""
    terms: list[ColumnElement[bool]] = []
    if wanted.search:
        pattern = _like_pattern(wanted.search)
        if dialect == "postgresql":
            terms.append(Record.value.ilike(pattern, escape="\\"))
        else:  # SQLite's LIKE ignores ASCII case
            terms.append(Record.value.like(pattern, escape="\\"))
    if wanted.decisions:
        terms.append(decision_condition(record_type, wanted.decisions))
    if wanted.verdicts:
        # The stored verdict column is what ``verdict_of`` reads from the result's booleans.
        terms.append(Record.verdict.in_(sorted(wanted.verdicts)))
    if wanted.qualities:
        terms.append(_quality().in_(sorted(wanted.qualities)))
    for flag in sorted(wanted.flags or ()):
        terms.append(Record.result[flag].as_boolean() == true())
    return terms


def _page_query(
    session: Session, batch_pk: int, record_type: str, wanted: ResultFilter
) -> Select[int, str, str]:
    dialect = session.connection().dialect.name
    return select(Record.seq, Record.value, cast_sql(Record.result, Text)).where(
        Record.batch_pk == batch_pk,
        Record.included,
        *filter_conditions(dialect, record_type, wanted),
    )


def _rows(raw: Sequence[Any]) -> list[ResultRow]:
    return [
        ResultRow(seq, value, None if text is None else orjson.loads(text))
        for seq, value, text in raw
    ]


def page_after(
    session: Session,
    batch_pk: int,
    record_type: str,
    wanted: ResultFilter,
    *,
    after: int,
    limit: int,
    scan: int,
) -> Window:
    """Up to ``limit`` matching rows with ``seq > after``, in file order, examining the seqs
    ``after + 1 .. after + scan`` at most."""
    last = after + scan
    stmt = (
        _page_query(session, batch_pk, record_type, wanted)
        .where(Record.seq > after, Record.seq <= last)
        .order_by(Record.seq)
        .limit(limit)
    )
    rows = _rows(session.execute(stmt).all())
    if len(rows) == limit:
        return Window(rows, after + 1, rows[-1].seq, True)
    return Window(rows, after + 1, last, False)


def page_before(
    session: Session,
    batch_pk: int,
    record_type: str,
    wanted: ResultFilter,
    *,
    before: int,
    limit: int,
    scan: int,
) -> Window:
    """The ``limit`` matching rows just before ``seq = before`` (the "previous" link),
    examining the seqs ``before - scan .. before - 1`` at most; in file order."""
    first = max(0, before - scan)
    stmt = (
        _page_query(session, batch_pk, record_type, wanted)
        .where(Record.seq < before, Record.seq >= first)
        .order_by(Record.seq.desc())
        .limit(limit)
    )
    rows = _rows(session.execute(stmt).all())[::-1]
    if len(rows) == limit:
        return Window(rows, rows[0].seq, before - 1, True)
    return Window(rows, first, before - 1, first == 0)


def seq_bounds(session: Session, batch_pk: int) -> tuple[int, int]:
    """The first and last seq of the batch's rows in the results (two index lookups)."""
    low = session.scalar(
        select(Record.seq)
        .where(Record.batch_pk == batch_pk, Record.included)
        .order_by(Record.seq)
        .limit(1)
    )
    high = session.scalar(
        select(Record.seq)
        .where(Record.batch_pk == batch_pk, Record.included)
        .order_by(Record.seq.desc())
        .limit(1)
    )
    return (int(low), int(high)) if low is not None and high is not None else (0, -1)


def decision_counts(session: Session, batch_pk: int, record_type: str) -> dict[str, int]:
    """Rows in the results per decision (``none``: not verified yet), one grouped scan."""
    # Grouped by the label: the JSON path written twice would bind its key twice, and
    # PostgreSQL cannot tell that the two expressions are the same.
    quality_path = _quality().label("quality")
    rows = session.execute(
        select(Record.verdict, quality_path, func.count())
        .where(Record.batch_pk == batch_pk, Record.included)
        .group_by(Record.verdict, quality_path)
    ).all()
    counts: dict[str, int] = {}
    for verdict, quality, count in rows:
        name = "none" if verdict is None else _decide(record_type, verdict, quality)
        counts[name] = counts.get(name, 0) + int(count)
    return counts


def _decide(record_type: str, verdict: str, quality: str | None) -> str:
    for row_verdict, row_quality, outcome in table(record_type):
        if row_verdict == verdict and (row_quality is None or row_quality == (quality or "")):
            return outcome
    return "unknown"
