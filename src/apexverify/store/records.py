"""All SQL over the records of a batch: bulk load, dedupe, cache application, chunk claims,
result writes and aggregates. Set-based statements keep memory flat on million-row batches."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .models import CachedResult, Record

GLOBAL_SCOPE = ""  # account_id of global-cache rows

_INSERT_COLUMNS = (
    "batch_pk",
    "seq",
    "value",
    "normalized",
    "key_hash",
    "kind",
    "included",
    "verdict",
    "result",
    "attempts",
    "exact_repeat",
)
_VALID_COLUMNS = _INSERT_COLUMNS[:5]


def insert_rows(session: Session, batch_pk: int, rows: Sequence[tuple[Any, ...]]) -> None:
    """Bulk-insert classified rows ``(seq, value, normalized, key_hash, kind, included,
    verdict, result_json)``: COPY on PostgreSQL; on SQLite an executemany that binds only five
    columns for valid rows (the rest are server defaults)."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        _copy_rows(conn, batch_pk, rows)
        return
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    valid = [(batch_pk, *row[:4]) for row in rows if row[4] == "valid"]
    other = [(batch_pk, *row, 0, False) for row in rows if row[4] != "valid"]
    for columns, batch in ((_VALID_COLUMNS, valid), (_INSERT_COLUMNS, other)):
        if batch:
            marks = ",".join("?" * len(columns))
            cursor.executemany(f"INSERT INTO records ({','.join(columns)}) VALUES ({marks})", batch)
    cursor.close()


def _copy_rows(conn: Connection, batch_pk: int, rows: Sequence[tuple[Any, ...]]) -> None:
    raw = conn.connection.driver_connection
    with (
        raw.cursor() as cur,
        cur.copy(  # type: ignore[union-attr]
            f"COPY records ({','.join(_INSERT_COLUMNS)}) FROM STDIN"
        ) as copy,
    ):
        for row in rows:
            copy.write_row((batch_pk, *row, 0, False))


def delete_rows(session: Session, batch_pk: int) -> None:
    session.execute(delete(Record).where(Record.batch_pk == batch_pk))


def resolve_repeats(session: Session, batch_pk: int, seqs: set[int], keep_duplicates: bool) -> None:
    """Exact pass over the rows that may repeat (``seqs``, see ``batches/dedupe.py``): within
    one (kind, key) the first row stays, later valid rows become duplicates of it, and a row
    whose text repeats an earlier row verbatim is flagged (one JSON key for both). Returns the
    number of new duplicates."""
    if not seqs:
        return 0
    conn = session.connection()
    conn.exec_driver_sql("CREATE TEMPORARY TABLE IF NOT EXISTS dedupe_seqs (seq INTEGER)")
    conn.exec_driver_sql("DELETE FROM dedupe_seqs")
    marker = "%s" if conn.dialect.name == "postgresql" else "?"
    conn.exec_driver_sql(
        f"INSERT INTO dedupe_seqs (seq) VALUES ({marker})", [(seq,) for seq in seqs]
    )
    rows = conn.execute(
        text(
            "SELECT r.id, r.seq, r.kind, r.key_hash, r.value FROM dedupe_seqs d"
            " JOIN records r ON r.batch_pk = :b AND r.seq = d.seq"
            " ORDER BY r.kind, r.key_hash, r.seq"
        ),
        {"b": batch_pk},
    ).all()
    conn.exec_driver_sql("DELETE FROM dedupe_seqs")
    updates = _repeat_updates(rows)
    if not updates:
        return 0
    table = Record.__table__
    conn.execute(
        update(table)
        .where(table.c.id == bindparam("rid"))
        .values(
            kind=bindparam("kind"),
            primary_seq=bindparam("first"),
            exact_repeat=bindparam("repeat"),
        ),
        updates,
    )
    dup_ids = [{"rid": u["rid"]} for u in updates if u["kind"] == "duplicate"]
    if dup_ids:
        conn.execute(
            update(table).where(table.c.id == bindparam("rid")).values(included=keep_duplicates),
            dup_ids,
        )
    return len(dup_ids)


def repeated_key_seqs(session: Session, batch_pk: int) -> set[int]:
    """The seqs of every row whose key hash occurs more than once in the batch (the input of
    ``resolve_repeats`` when no in-memory finder saw the rows in order: chunked parses)."""
    rows = session.execute(
        text(
            "SELECT r.seq FROM records r JOIN (SELECT key_hash FROM records WHERE batch_pk = :b"
            " GROUP BY key_hash HAVING COUNT(*) > 1) k ON r.key_hash = k.key_hash"
            " WHERE r.batch_pk = :b"
        ),
        {"b": batch_pk},
    )
    return {seq for (seq,) in rows}


def _repeat_updates(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Rows sorted by (kind, key, seq) -> updates for every row after the first of a group."""
    updates: list[dict[str, Any]] = []
    group: tuple[str, bytes] | None = None
    first_seq, seen_text = 0, set()
    for rid, seq, kind, key, value in rows:
        if (kind, key) != group:
            group, first_seq, seen_text = (kind, key), seq, {value}
            continue
        repeat = value in seen_text
        seen_text.add(value)
        updates.append(
            {
                "rid": rid,
                "kind": "duplicate" if kind == "valid" else kind,
                "first": first_seq,
                "repeat": repeat,
            }
        )
    return updates


def apply_cache(
    session: Session,
    batch_pk: int,
    record_type: str,
    scope: str,
    max_age_days: int,
    source: str,
) -> int:
    """Copy cached results onto this batch's still-unverified valid rows; returns how many."""
    since = int(time.time()) - max_age_days * 86400
    result = session.execute(
        text(
            "UPDATE records SET cache_source = :source, verdict = c.verdict, result = c.result "
            "FROM result_cache c WHERE records.batch_pk = :b AND records.kind = 'valid' "
            "AND records.verdict IS NULL AND c.account_id = :scope AND c.record_type = :t "
            "AND c.key_hash = records.key_hash AND c.verified_at >= :since"
        ),
        {"source": source, "b": batch_pk, "scope": scope, "t": record_type, "since": since},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass
class Counts:
    valid: int = 0
    wrong: int = 0
    duplicate: int = 0
    cache_account: int = 0
    cache_global: int = 0


@dataclass(frozen=True)
class PendingRecord:
    id: int
    seq: int
    normalized: str
    key_hash: bytes
    attempts: int


def claim_chunk(
    session: Session, batch_pk: int, after_seq: int, limit: int, until_seq: int | None = None
) -> list[PendingRecord]:
    """The next unverified valid rows after ``after_seq`` (up to ``until_seq`` when given)
    whose retry time has come."""
    stmt = (
        select(
            Record.id,
            Record.seq,
            func.coalesce(Record.normalized, Record.value),
            Record.key_hash,
            Record.attempts,
        )
        .where(
            Record.batch_pk == batch_pk,
            Record.seq > after_seq,
            Record.kind == "valid",
            Record.verdict.is_(None),
            (Record.retry_at.is_(None)) | (Record.retry_at <= int(time.time())),
            *([Record.seq <= until_seq] if until_seq is not None else []),
        )
        .order_by(Record.seq)
        .limit(limit)
    )
    return [PendingRecord(*row) for row in session.execute(stmt)]


def due_ranges(session: Session, batch_pk: int, size: int) -> list[tuple[int, int]]:
    """``(first_seq, last_seq)`` of consecutive groups of ``size`` unverified rows whose retry
    time has come: the chunk jobs of a scaled-out verification (one query, any batch size)."""
    rows = session.execute(
        text(
            "SELECT MIN(seq), MAX(seq) FROM (SELECT seq, (ROW_NUMBER() OVER (ORDER BY seq) - 1)"
            " / :n AS g FROM records WHERE batch_pk = :b AND kind = 'valid'"
            " AND verdict IS NULL AND (retry_at IS NULL OR retry_at <= :now)) t"
            " GROUP BY g ORDER BY 1"
        ),
        {"b": batch_pk, "n": max(size, 1), "now": int(time.time())},
    )
    return [(int(a), int(b)) for a, b in rows]


def next_retry_at(session: Session, batch_pk: int) -> int | None:
    """Earliest retry time among unverified rows, or None when none is left."""
    row = session.execute(
        text(
            "SELECT COUNT(*), MIN(retry_at) FROM records WHERE batch_pk = :b "
            "AND kind = 'valid' AND verdict IS NULL"
        ),
        {"b": batch_pk},
    ).one()
    if not row[0]:
        return None
    return int(row[1] or 0)


def write_results(session: Session, finals: Iterable[tuple[int, str, dict[str, Any], int]]) -> int:
    """Store final results ``(record_id, verdict, result, attempts)``; a row that already has
    a verdict is left alone, so a re-run chunk never writes twice. Returns rows written."""
    params = [
        {"rid": rid, "verdict": verdict, "result": result, "attempts": attempts}
        for rid, verdict, result, attempts in finals
    ]
    if not params:
        return 0
    stmt = (
        update(Record.__table__)
        .where(Record.__table__.c.id == bindparam("rid"), Record.__table__.c.verdict.is_(None))
        .values(
            verdict=bindparam("verdict"),
            result=bindparam("result"),
            attempts=bindparam("attempts"),
            retry_at=None,
        )
    )
    result = session.connection().execute(stmt, params)
    return int(result.rowcount)


def schedule_retries(session: Session, retries: Iterable[tuple[int, int, int]]) -> None:
    """``(record_id, retry_at_epoch, attempts)`` for items an engine asked to retry later."""
    params = [{"rid": rid, "retry_at": at, "attempts": n} for rid, at, n in retries]
    if not params:
        return
    stmt = (
        update(Record.__table__)
        .where(Record.__table__.c.id == bindparam("rid"), Record.__table__.c.verdict.is_(None))
        .values(retry_at=bindparam("retry_at"), attempts=bindparam("attempts"))
    )
    session.connection().execute(stmt, params)


def upsert_cache(
    session: Session, scope: str, record_type: str, entries: Sequence[tuple[bytes, str, dict]]
) -> None:
    """Store conclusive results ``(key_hash, verdict, result)`` in one cache scope."""
    if not entries:
        return
    now = int(time.time())
    values = [
        {
            "account_id": scope,
            "record_type": record_type,
            "key_hash": key,
            "verdict": verdict,
            "result": result,
            "verified_at": now,
        }
        for key, verdict, result in entries
    ]
    dialect = session.connection().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(CachedResult).values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["account_id", "record_type", "key_hash"],
        set_={
            "verdict": stmt.excluded.verdict,
            "result": stmt.excluded.result,
            "verified_at": stmt.excluded.verified_at,
        },
    )
    session.execute(stmt)


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
    """Counts over verified valid rows: verdicts, cache sources, and fresh unknowns."""
    row = session.execute(
        text(
            "SELECT COUNT(*), "
            "SUM(CASE WHEN verdict = 'valid' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN verdict = 'wrong' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN verdict = 'unknown' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN cache_source = 'account' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN cache_source = 'global' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN verdict = 'unknown' AND cache_source IS NULL THEN 1 ELSE 0 END) "
            "FROM records WHERE batch_pk = :b AND kind = 'valid'"
        ),
        {"b": batch_pk},
    ).one()
    keys = ("total", "valid", "wrong", "unknown", "account_cache", "global_cache", "fresh_unknown")
    return {k: int(v or 0) for k, v in zip(keys, row, strict=True)}


def iter_export_rows(
    session: Session, batch_pk: int, unique_values: bool, batch_size: int = 5000
) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """``(value, result)`` of the rows in the results, in file order, read in pages so memory
    stays flat. With ``unique_values`` a value repeated verbatim appears once (JSON keys)."""
    after = -1
    repeat_filter = (
        " AND NOT EXISTS (SELECT 1 FROM records r2 WHERE r2.batch_pk = r.batch_pk"
        " AND r2.key_hash = r.key_hash AND r2.value = r.value AND r2.included"
        " AND r2.seq < r.seq)"
        if unique_values
        else ""
    )
    query = text(
        "SELECT r.seq, r.value, r.result FROM records r WHERE r.batch_pk = :b AND r.included"
        f" AND r.seq > :after{repeat_filter} ORDER BY r.seq LIMIT :n"
    )
    while True:
        rows = session.execute(query, {"b": batch_pk, "after": after, "n": batch_size}).all()
        if not rows:
            return
        for _seq, value, result in rows:
            yield value, (json.loads(result) if isinstance(result, str) else result)
        after = rows[-1][0]
