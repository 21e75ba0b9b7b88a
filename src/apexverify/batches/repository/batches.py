"""SQL over the batches table."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Row, bindparam, func, select, update
from sqlalchemy.orm import Session

from ...store.db import affected
from ...store.models import Account, ApiKey, Batch, utcnow

# The literal of BatchStatus.ONGOING (states.py imports this module, not the reverse).
_ONGOING = "verification_ongoing"


def for_account(session: Session, account_id: str, batch_uuid: str) -> Batch | None:
    return session.scalars(
        select(Batch).where(Batch.uuid == batch_uuid, Batch.account_id == account_id)
    ).first()


_TABLE = Batch.__table__
_KEYS = ApiKey.__table__
# Built once: a polled endpoint should not pay for building and coercing a statement each time.
_ROW_FOR_ACTIVE_KEY = (
    select(_TABLE)
    .join(_KEYS, _KEYS.c.account_id == _TABLE.c.account_id)
    .where(
        _TABLE.c.uuid == bindparam("batch_uuid"),
        _KEYS.c.id == bindparam("key_id"),
        _KEYS.c.revoked_at.is_(None),
    )
)


def row_for_active_key(connection: Connection, key_id: str, batch_uuid: str) -> Row[Any] | None:
    """The batch, as a plain row of the batches table (each column under its attribute's
    name), if it belongs to the account of key ``key_id`` and that key is not revoked: one
    indexed read that checks the key too, without the ORM's instance machinery (the polled
    status endpoint, ``api/status_fast_path.py``). None: no such batch for that account, or
    the key was revoked (in any process: this reads the key's row)."""
    params = {"batch_uuid": batch_uuid, "key_id": key_id}
    return connection.execute(_ROW_FOR_ACTIVE_KEY, params).first()


class ActiveKeyRowReader:
    """:func:`row_for_active_key` on SQLite straight over a pooled DBAPI connection: the
    same statement and the same column types, without a SQLAlchemy ``Connection`` (its
    ``BEGIN``, result machinery and rollback were 0.13 ms of a 0.4 ms status answer; this is
    0.02 ms). In autocommit, the one SELECT is its own read transaction."""

    def __init__(self, engine: Engine) -> None:
        compiled = _ROW_FOR_ACTIVE_KEY.compile(dialect=engine.dialect)
        if not compiled.positional or compiled.positiontup is None:
            raise ValueError("a positional (SQLite) dialect is expected")
        self._engine = engine
        self._sql = str(compiled)
        self._order = tuple(compiled.positiontup)
        columns = list(_TABLE.columns)
        self._row = namedtuple("BatchRow", [column.key for column in columns])  # type: ignore[misc]
        dialect = engine.dialect
        self._processors: list[Callable[[Any], Any] | None] = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ]

    def read(self, key_id: str, batch_uuid: str) -> Any | None:
        """A row with each column of the batches table as an attribute, or None."""
        given = {"batch_uuid": batch_uuid, "key_id": key_id}
        connection = self._engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                values = cursor.execute(self._sql, [given[name] for name in self._order]).fetchone()
            finally:
                cursor.close()
        finally:
            connection.close()  # back to the pool
        if values is None:
            return None
        return self._row(
            *(
                value if process is None or value is None else process(value)
                for process, value in zip(self._processors, values, strict=True)
            )
        )


def by_uuid(session: Session, batch_uuid: str, *, share_lock: bool = False) -> Batch | None:
    """``share_lock`` holds a share lock on the row (PostgreSQL) to the end of the
    transaction, so that a concurrent PUT/PATCH (which updates the row) waits."""
    stmt = select(Batch).where(Batch.uuid == batch_uuid)
    if share_lock:
        stmt = stmt.with_for_update(read=True)
    return session.scalars(stmt).one_or_none()


def owner(session: Session, batch: Batch) -> Account:
    account = session.get(Account, batch.account_id)
    assert account is not None  # accounts.id is a foreign key of batches
    return account


def page(
    session: Session,
    account_id: str,
    *,
    offset: int,
    limit: int,
    created_after: datetime | None,
    created_before: datetime | None,
) -> tuple[list[Batch], int]:
    conditions: list[ColumnElement[bool]] = [Batch.account_id == account_id]
    if created_after is not None:
        conditions.append(Batch.created_at >= created_after)
    if created_before is not None:
        conditions.append(Batch.created_at <= created_before)
    total = session.scalar(select(func.count()).select_from(Batch).where(*conditions)) or 0
    rows = session.scalars(
        select(Batch)
        .where(*conditions)
        .order_by(Batch.created_at.desc(), Batch.pk.desc())
        .offset(offset)
        .limit(limit)
    )
    return list(rows), int(total)


def with_status(session: Session, statuses: Sequence[str]) -> list[tuple[str, str, int]]:
    """``(uuid, status, parse_generation)`` of every batch in one of ``statuses``."""
    rows = session.execute(
        select(Batch.uuid, Batch.status, Batch.parse_generation).where(Batch.status.in_(statuses))
    )
    return [(str(u), str(s), int(g)) for u, s, g in rows]


def set_status_if(
    session: Session,
    batch_pk: int,
    from_: str,
    to: str,
    *,
    generation: int | None = None,
    **values: Any,
) -> bool:
    """Compare-and-set: move the batch from ``from_`` (and parse ``generation`` when given)
    to ``to`` with ``values``; False when the row was no longer in that state."""
    conditions = [Batch.pk == batch_pk, Batch.status == from_]
    if generation is not None:
        conditions.append(Batch.parse_generation == generation)
    stmt = update(Batch).where(*conditions).values(status=to, updated_at=utcnow(), **values)
    return bool(affected(session, stmt))


def add_verified(session: Session, batch_pk: int, written: int) -> None:
    session.execute(
        update(Batch)
        .where(Batch.pk == batch_pk)
        .values(verified=Batch.verified + written, updated_at=utcnow())
    )


def note_retry_reason(session: Session, batch_pk: int, reason: str) -> None:
    """Keep the latest reason an engine gave for retrying rows later: it becomes the stall
    reason if the batch then has nothing due."""
    session.execute(update(Batch).where(Batch.pk == batch_pk).values(stall_reason=reason[:1000]))


def mark_stalled(
    session: Session,
    batch_pk: int,
    next_attempt_at: int,
    *,
    reason: str | None = None,
    if_verified: int | None = None,
) -> bool:
    """The ongoing batch cannot move forward before ``next_attempt_at``. ``if_verified``
    marks it only if no record was decided since the caller read that progress counter (a
    chunk that decided nothing while others did is no stall). True when the batch was not
    stalled before (the caller logs the start of a stall once)."""
    conditions = [Batch.pk == batch_pk, Batch.status == _ONGOING]
    if if_verified is not None:
        conditions.append(Batch.verified == if_verified)
    current = session.execute(select(Batch.stalled_since).where(*conditions)).first()
    if current is None:
        return False
    values: dict[str, Any] = {"next_attempt_at": next_attempt_at}
    if current[0] is None:
        values["stalled_since"] = utcnow()
    if reason is not None:
        values["stall_reason"] = reason[:1000]
    session.execute(update(Batch).where(Batch.pk == batch_pk).values(**values))
    return current[0] is None


def clear_stall(session: Session, batch_pk: int) -> bool:
    """Rows were decided again: the batch moves forward. True when it was stalled."""
    stmt = (
        update(Batch)
        .where(Batch.pk == batch_pk, Batch.stalled_since.is_not(None))
        .values(stall_reason=None, stalled_since=None, next_attempt_at=None)
    )
    return bool(affected(session, stmt))
