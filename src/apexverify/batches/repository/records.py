"""SQL over the records of a batch: bulk load, dedupe, chunk claims, result writes and
aggregates. Set-based statements keep memory flat on million-row batches."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple, cast

import orjson
from sqlalchemy import (
    JSON,
    ColumnElement,
    Table,
    Text,
    bindparam,
    case,
    delete,
    false,
    func,
    select,
    text,
    update,
)
from sqlalchemy import cast as cast_sql
from sqlalchemy.orm import Session, aliased

from ...store.db import affected
from ...store.models import Record, RecordKind
from .predicates import due, unverified

_TABLE = cast(Table, Record.__table__)


def delete_rows(session: Session, batch_pk: int) -> None:
    session.execute(delete(Record).where(Record.batch_pk == batch_pk))


def repeated_key_seqs(session: Session, batch_pk: int) -> set[int]:
    """The seqs of every row whose key hash occurs more than once in the batch (the input of
    ``repeats.resolve`` when no in-memory finder saw the rows in order: chunked parses)."""
    rows = session.execute(
        text(
            "SELECT r.seq FROM records r JOIN (SELECT key_hash FROM records WHERE batch_pk = :b"
            " GROUP BY key_hash HAVING COUNT(*) > 1) k ON r.key_hash = k.key_hash"
            " WHERE r.batch_pk = :b"
        ),
        {"b": batch_pk},
    )
    return {seq for (seq,) in rows}


def kind_counts(session: Session, batch_pk: int) -> dict[str, int]:
    rows = session.execute(
        select(Record.kind, func.count()).where(Record.batch_pk == batch_pk).group_by(Record.kind)
    ).all()
    return {str(kind): int(n) for kind, n in rows}


class PendingRecord(NamedTuple):
    """A row of a claimed chunk. A named tuple: a chunk builds thousands of them, straight
    from the driver's rows (a frozen dataclass cost more than the query)."""

    id: int
    seq: int
    normalized: str
    key_hash: bytes
    attempts: int


def _mail_domain(session: Session) -> ColumnElement[str]:
    """The domain of a row's address (the canonical form is stored when it differs)."""
    address = func.coalesce(Record.normalized, Record.value)
    if session.connection().dialect.name == "postgresql":
        return func.split_part(address, "@", 2)
    return func.substr(address, func.instr(address, "@") + 1)


def due_chunks(
    session: Session, batch_pk: int, size: int, *, by_domain: bool
) -> Iterator[list[int]]:
    """The ids of the due rows, cut into chunks of ``size``: the chunk jobs of a verification
    pass. ``by_domain`` orders them by mail domain (then file order), so a chunk holds many
    addresses of few domains and the engine reuses its connections; otherwise file order.
    One sorted scan of the batch's unverified rows (the partial index), streamed."""
    order = [_mail_domain(session), Record.seq] if by_domain else [Record.seq]
    stmt = select(Record.id).where(due(batch_pk)).order_by(*order)
    # Core rows through the session's connection: the ORM's result machinery cost more than
    # the scan (profiled at 1,000,000 rows).
    found = session.connection().execute(stmt.execution_options(yield_per=10_000))
    for chunk in found.scalars().partitions(size):
        yield list(chunk)


def _chunk_rows(session: Session, batch_pk: int, ids: Sequence[int]) -> list[Any]:
    """The chunk's rows looked up by primary key only. The unverified/due conditions are
    applied here, not in SQL: with them in the WHERE clause SQLite prefers the partial index
    and scans every unverified row of the batch for each chunk (quadratic over a batch)."""
    stmt = select(
        Record.id,
        Record.seq,
        func.coalesce(Record.normalized, Record.value),
        Record.key_hash,
        Record.attempts,
        Record.retry_at,
        Record.kind,
        Record.verdict,
        Record.batch_pk,
    ).where(Record.id.in_(ids))
    return [
        row
        for row in session.execute(stmt)
        if row.batch_pk == batch_pk and row.kind == RecordKind.VALID and row.verdict is None
    ]


# SQLite: the ids as one JSON parameter (one bound value instead of one per row), read in
# the chunk's order (the CROSS JOIN keeps json_each the outer loop), as the driver's plain
# tuples. The rows are looked up by primary key: with the unverified terms in the WHERE
# clause SQLite would otherwise pick the partial index and scan every unverified row of the
# batch for each chunk (quadratic over a batch).
_SQLITE_CLAIM = (
    "SELECT r.id, r.seq, coalesce(r.normalized, r.value), r.key_hash, r.attempts"
    " FROM json_each(?) AS j CROSS JOIN records AS r NOT INDEXED ON r.id = j.value"
    " WHERE r.batch_pk = ? AND r.kind = 'valid' AND r.verdict IS NULL"
    " AND (r.retry_at IS NULL OR r.retry_at <= ?)"
)


def claim_ids(session: Session, batch_pk: int, ids: Sequence[int]) -> list[PendingRecord]:
    """The rows of one chunk that are still due, in the chunk's order."""
    now = int(time.time())
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        found = connection.exec_driver_sql(
            _SQLITE_CLAIM, (orjson.dumps(list(ids)).decode(), batch_pk, now)
        )
        return list(map(PendingRecord._make, found))
    rows = {
        row.id: PendingRecord(row.id, row.seq, row[2], cast(bytes, row.key_hash), row.attempts)
        for row in _chunk_rows(session, batch_pk, ids)
        if row.retry_at is None or row.retry_at <= now
    }
    return [rows[rid] for rid in ids if rid in rows]


def next_retry_at(session: Session, batch_pk: int) -> int | None:
    """Earliest retry time among unverified rows, or None when none is left (0 when one is
    due now)."""
    stmt = select(func.count(), func.min(Record.retry_at)).where(unverified(batch_pk))
    count, at = session.execute(stmt).one()
    return None if not count else int(at or 0)


def any_unverified(session: Session, batch_pk: int) -> bool:
    """Existence, not a count: it runs after every chunk, so it must not scan the batch."""
    return (
        session.execute(select(Record.id).where(unverified(batch_pk)).limit(1)).first() is not None
    )


def unverified_count(session: Session, batch_pk: int) -> int:
    return int(session.scalar(select(func.count()).where(unverified(batch_pk))) or 0)


# SQLite: the driver's own executemany, parameters as plain tuples in the caller's order
# (numbered parameters: no tuple rebuilt per row). SQLAlchemy's per-row parameter processing
# was about a third of a verification chunk's write (profiled).
_SQLITE_WRITE = (
    "UPDATE records SET verdict = ?2, result = ?3, attempts = ?4, retry_at = NULL "
    "WHERE id = ?1 AND verdict IS NULL"
)

# A final result to store: (record_id, verdict, result as JSON text, attempts).
Final = tuple[int, str, str, int]


def write_results(session: Session, finals: Sequence[Final]) -> int:
    """Store final results ``(record_id, verdict, result_json, attempts)``; the JSON text is
    stored as given (the caller encodes each distinct result once). A row that already has
    a verdict is left alone, so a re-run chunk never writes twice. Returns rows written."""
    if not finals:
        return 0
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        return int(connection.exec_driver_sql(_SQLITE_WRITE, finals).rowcount)
    params = [
        {"rid": rid, "verdict": verdict, "result": result, "attempts": attempts}
        for rid, verdict, result, attempts in finals
    ]
    stmt = (
        update(_TABLE)
        .where(_TABLE.c.id == bindparam("rid"), _TABLE.c.verdict.is_(None))
        .values(
            verdict=bindparam("verdict"),
            result=cast_sql(bindparam("result", type_=Text), JSON),
            attempts=bindparam("attempts"),
            retry_at=None,
        )
    )
    return int(connection.execute(stmt, params).rowcount)


def end_unverified(session: Session, batch_pk: int, verdict: str, result: dict[str, Any]) -> int:
    """Give every row of the batch still without a verdict the same final result, in one
    set-based UPDATE over the partial index (a million-row batch is one statement; no row
    passes through Python). A row a racing chunk wrote first keeps its verdict, and a chunk
    that writes afterwards finds no NULL verdict left (``write_results``): one result per
    row either way. Returns the rows ended."""
    stmt = (
        update(Record)
        .where(unverified(batch_pk))
        .values(verdict=verdict, result=result, retry_at=None)
        .execution_options(synchronize_session=False)
    )
    return affected(session, stmt)


def schedule_retries(session: Session, retries: Iterable[tuple[int, int, int]]) -> None:
    """``(record_id, retry_at_epoch, attempts)`` for items an engine asked to retry later."""
    params = [{"rid": rid, "retry_at": at, "attempts": n} for rid, at, n in retries]
    if not params:
        return
    stmt = (
        update(_TABLE)
        .where(_TABLE.c.id == bindparam("rid"), _TABLE.c.verdict.is_(None))
        .values(retry_at=bindparam("retry_at"), attempts=bindparam("attempts"))
    )
    session.connection().execute(stmt, params)


def copy_results_to_duplicates(session: Session, batch_pk: int) -> None:
    """Kept duplicate rows share the verdict of the first occurrence of their value."""
    session.execute(
        text(
            "UPDATE records SET verdict = p.verdict, result = p.result FROM records p "
            "WHERE records.batch_pk = :b AND records.kind = 'duplicate' AND records.included "
            "AND p.batch_pk = :b AND p.seq = records.primary_seq"
        ),
        {"b": batch_pk},
    )


def verdict_counts(session: Session, batch_pk: int) -> dict[str, int]:
    """Counts over the valid-format first occurrences: verdicts, cache sources, fresh
    unknowns and rows still without a verdict."""

    def count_if(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    row = session.execute(
        select(
            func.count(Record.verdict),
            count_if(Record.verdict == "valid"),
            count_if(Record.verdict == "wrong"),
            count_if(Record.verdict == "unknown"),
            count_if(Record.cache_source == "account"),
            count_if(Record.cache_source == "global"),
            count_if((Record.verdict == "unknown") & Record.cache_source.is_(None)),
            count_if(Record.verdict.is_(None)),
        ).where(Record.batch_pk == batch_pk, Record.kind == RecordKind.VALID)
    ).one()
    keys = (
        "total",
        "valid",
        "wrong",
        "unknown",
        "account_cache",
        "global_cache",
        "fresh_unknown",
        "unverified",
    )
    return {k: int(v or 0) for k, v in zip(keys, row, strict=True)}


def iter_export_rows(
    session: Session, batch_pk: int, unique_values: bool, batch_size: int = 5000
) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """``(value, result)`` of the rows in the results, in file order (see
    :func:`iter_export_json`), results decoded."""
    for value, raw in iter_export_json(session, batch_pk, unique_values, batch_size):
        yield value, (None if raw is None else orjson.loads(raw))


def iter_export_json(
    session: Session, batch_pk: int, unique_values: bool, batch_size: int = 5000
) -> Iterator[tuple[str, str | None]]:
    """``(value, result as its stored JSON text)`` of the rows in the results, in file order,
    read in pages over the (batch_pk, seq) key so memory stays flat. With ``unique_values`` a
    value repeated verbatim appears once (JSON keys): the parse flagged every such repeat
    (``exact_repeat``), so this is one indexed range scan, linear in the batch."""
    after = -1
    stmt = select(Record.seq, Record.value, cast_sql(Record.result, Text)).where(
        Record.batch_pk == batch_pk,
        Record.included,
        Record.seq > bindparam("after"),
        *([Record.exact_repeat == false()] if unique_values else []),
    )
    stmt = stmt.order_by(Record.seq).limit(batch_size)
    # Core rows through the session's connection: the ORM's result machinery was the largest
    # share of an export's time (profiled), and these are plain tuples anyway.
    connection = session.connection()
    while True:
        rows = connection.execute(stmt, {"after": after}).all()
        if not rows:
            return
        for _seq, value, result in rows:
            yield value, result
        after = rows[-1][0]


def iter_merge_results(
    session: Session, batch_pk: int, batch_size: int = 5000
) -> Iterator[tuple[int, str, str | None]]:
    """``(seq, value, result as stored JSON text)`` of *every* record of the batch in file
    order, removed ones included (the merged-back file is the customer's whole file): a
    duplicate without a result of its own (``remove_duplicate``) carries its first
    occurrence's, looked up by the (batch_pk, seq) key. Paged like :func:`iter_export_json`."""
    first = aliased(Record)
    after = -1
    stmt = (
        select(
            Record.seq,
            Record.value,
            cast_sql(func.coalesce(Record.result, first.result), Text),
        )
        .outerjoin(first, (first.batch_pk == Record.batch_pk) & (first.seq == Record.primary_seq))
        .where(Record.batch_pk == batch_pk, Record.seq > bindparam("after"))
        .order_by(Record.seq)
        .limit(batch_size)
    )
    connection = session.connection()
    while True:
        rows = connection.execute(stmt, {"after": after}).all()
        if not rows:
            return
        yield from rows
        after = rows[-1][0]


def verdict_field_counts(
    session: Session, batch_pk: int, field: str
) -> list[tuple[str | None, str | None, int]]:
    """``(verdict, value of one result field, count)`` over the rows the verdict counts
    cover (valid-format first occurrences with a verdict): with ``quality`` (emails) or
    ``type`` (phones), one scan gives both the decision counts and the breakdown chart of
    the XLSX Summary (the JSON field read once per row: the cost of the scan)."""
    value = Record.result[field].as_string()
    rows = session.execute(
        select(Record.verdict, value, func.count())
        .where(
            Record.batch_pk == batch_pk,
            Record.kind == RecordKind.VALID,
            Record.verdict.is_not(None),
        )
        .group_by(Record.verdict, value)
    ).all()
    return [(verdict, v, int(n)) for verdict, v, n in rows]


def result_field_counts(session: Session, batch_pk: int, field: str) -> dict[str, int]:
    """How many verified rows carry each value of one result field (``quality`` for emails,
    ``type`` for phones), over the rows the verdict counts cover: valid-format, first
    occurrences. SQLAlchemy's JSON path compiles for SQLite and PostgreSQL alike."""
    value = Record.result[field].as_string()
    rows = session.execute(
        select(value, func.count())
        .where(
            Record.batch_pk == batch_pk,
            Record.kind == RecordKind.VALID,
            Record.verdict.is_not(None),
        )
        .group_by(value)
    ).all()
    return {str(name or "none"): int(count) for name, count in rows}
