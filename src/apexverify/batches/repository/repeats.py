"""The exact pass over the rows that may repeat, after a parse's load (the rows the duplicate
finder of ``batches/dedupe.py`` named): within one (kind, key) the first row in file order
stays, later valid rows become duplicates of it (``included`` then follows
``remove_duplicate``), and a row whose text repeats an earlier row's verbatim is flagged
``exact_repeat`` (one JSON key for both).

On SQLite the candidate rows are read with one statement that takes their seqs as one JSON
array (``json_each``) and the updates go through the driver's ``executemany`` with plain
tuples: SQLAlchemy's per-row parameter processing of the updates and the temporary table of
seqs were most of the 1.5 s this pass took on a million-row file with 3% duplicates
(profiled). Other databases go through SQLAlchemy (:func:`resolve_portable`, the seqs in a
temporary table: PostgreSQL takes at most 65,535 bound values a statement); both apply the
one rule of :func:`_updates`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.orm import Session

from ...store.models import RecordKind

_CANDIDATES = (
    "SELECT r.id, r.seq, r.kind, r.key_hash, r.value FROM records r"
    " WHERE r.batch_pk = ? AND r.seq IN (SELECT value FROM json_each(?))"
    " ORDER BY r.kind, r.key_hash, r.seq"
)
_UPDATE_REPEAT = "UPDATE records SET kind = ?, primary_seq = ?, exact_repeat = ? WHERE id = ?"
_UPDATE_DUPLICATE = (
    "UPDATE records SET kind = ?, primary_seq = ?, exact_repeat = ?, included = ? WHERE id = ?"
)

_UPDATE_REPEAT_NAMED = (
    "UPDATE records SET kind = :kind, primary_seq = :first, exact_repeat = :repeat WHERE id = :rid"
)
_UPDATE_DUPLICATE_NAMED = (
    "UPDATE records SET kind = :kind, primary_seq = :first, exact_repeat = :repeat,"
    " included = :included WHERE id = :rid"
)


def resolve(session: Session, batch_pk: int, seqs: set[int], keep_duplicates: bool) -> int:
    """Resolve the candidate rows ``seqs``; returns the number of new duplicates."""
    if not seqs:
        return 0
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        return resolve_portable(session, batch_pk, seqs, keep_duplicates)
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    cursor = driver.cursor()
    try:
        cursor.execute(_CANDIDATES, (batch_pk, orjson.dumps(sorted(seqs)).decode()))
        repeats, duplicates = _updates(cursor.fetchall(), keep_duplicates)
        if repeats:
            cursor.executemany(_UPDATE_REPEAT, repeats)
        if duplicates:
            cursor.executemany(_UPDATE_DUPLICATE, duplicates)
    finally:
        cursor.close()
    return len(duplicates)


def resolve_portable(session: Session, batch_pk: int, seqs: set[int], keep_duplicates: bool) -> int:
    """:func:`resolve` through SQLAlchemy, for any database (PostgreSQL's path)."""
    if not seqs:
        return 0
    conn = session.connection()
    conn.exec_driver_sql("CREATE TEMPORARY TABLE IF NOT EXISTS dedupe_seqs (seq INTEGER)")
    conn.exec_driver_sql("DELETE FROM dedupe_seqs")
    conn.execute(text("INSERT INTO dedupe_seqs (seq) VALUES (:seq)"), [{"seq": s} for s in seqs])
    rows = conn.execute(
        text(
            "SELECT r.id, r.seq, r.kind, r.key_hash, r.value FROM dedupe_seqs d"
            " JOIN records r ON r.batch_pk = :b AND r.seq = d.seq"
            " ORDER BY r.kind, r.key_hash, r.seq"
        ),
        {"b": batch_pk},
    ).all()
    conn.exec_driver_sql("DELETE FROM dedupe_seqs")
    repeats, duplicates = _updates(rows, keep_duplicates)
    if repeats:
        conn.execute(
            text(_UPDATE_REPEAT_NAMED),
            [{"kind": k, "first": f, "repeat": r, "rid": i} for k, f, r, i in repeats],
        )
    if duplicates:
        conn.execute(
            text(_UPDATE_DUPLICATE_NAMED),
            [
                {"kind": k, "first": f, "repeat": r, "included": inc, "rid": i}
                for k, f, r, inc, i in duplicates
            ],
        )
    return len(duplicates)


def _updates(
    rows: Sequence[Any], keep_duplicates: bool
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Rows sorted by (kind, key, seq) -> the update of every row after the first of its
    group: repeats of a malformed row keep their kind and ``included``; valid rows become
    duplicates."""
    repeats: list[tuple[Any, ...]] = []
    duplicates: list[tuple[Any, ...]] = []
    valid, duplicate = RecordKind.VALID.value, RecordKind.DUPLICATE.value
    group: tuple[str, bytes] | None = None
    first_seq, seen_text = 0, set()
    for rid, seq, kind, key, value in rows:
        if (kind, key) != group:
            group, first_seq, seen_text = (kind, key), seq, {value}
            continue
        repeat = value in seen_text
        seen_text.add(value)
        if kind in (valid, duplicate):  # a valid row (or an earlier duplicate) repeats
            duplicates.append((duplicate, first_seq, repeat, keep_duplicates, rid))
        else:
            repeats.append((kind, first_seq, repeat, rid))
    return repeats, duplicates
