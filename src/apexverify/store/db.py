"""Engine and transactions.

SQLite runs in WAL mode with a busy timeout. Write transactions on SQLite start with
``BEGIN IMMEDIATE`` so that a transaction that reads before it writes waits for the write lock
instead of failing with SQLITE_BUSY when it upgrades; read transactions stay deferred so long
exports never block writers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import orjson
from sqlalchemy import CursorResult, Engine, Executable, create_engine, event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

_ON_COMMIT = "apexverify_on_commit"
_ON_ROLLBACK = "apexverify_on_rollback"


def affected(session: Session, statement: Executable) -> int:
    """Run an UPDATE/DELETE and return how many rows it changed (compare-and-set checks)."""
    return int(cast(CursorResult[Any], session.execute(statement)).rowcount)


def on_commit(session: Session, callback: Callable[[], object]) -> None:
    """Run ``callback`` once the current transaction of ``session`` commits; never if it
    rolls back (enqueue a job, delete a file the transaction stopped referencing)."""
    session.connection()  # begin the transaction the callback belongs to, if not yet begun
    session.info.setdefault(_ON_COMMIT, []).append(callback)


def on_rollback(session: Session, callback: Callable[[], object]) -> None:
    """Run ``callback`` if the current transaction rolls back (remove a file stored for a
    row that will not exist)."""
    session.connection()
    session.info.setdefault(_ON_ROLLBACK, []).append(callback)


def _run_callbacks(session: Session, name: str) -> None:
    for callback in session.info.pop(name, []):
        callback()


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    # SQLAlchemy dispatches this for a released SAVEPOINT too: only the outermost commit counts.
    if session.in_nested_transaction():
        return
    session.info.pop(_ON_ROLLBACK, None)
    _run_callbacks(session, _ON_COMMIT)


@event.listens_for(Session, "after_transaction_end")
def _after_end(session: Session, transaction: SessionTransaction) -> None:
    # The outermost transaction ended without a commit (a commit ran and cleared them first).
    if transaction.parent is None and not transaction.nested:
        session.info.pop(_ON_COMMIT, None)
        _run_callbacks(session, _ON_ROLLBACK)


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and pick the psycopg 3 driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _sqlite_path(url: str) -> Path | None:
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url.endswith(":memory:"):
        return None
    return Path(url[len(prefix) :])


def sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL, as given (relative paths are relative to the working
    directory); None for PostgreSQL and in-memory SQLite."""
    return _sqlite_path(normalize_url(url))


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


# JSON columns (every verified record's result) are encoded with orjson: the stdlib encoder
# was a measured share of each verification chunk's write. Compact text, same values.
_JSON = {"json_serializer": _json_text, "json_deserializer": orjson.loads}


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        return _make_sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **_JSON)


def _make_sqlite_engine(url: str) -> Engine:
    path = _sqlite_path(url)
    if path is not None:
        path = path.resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{path}"
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 60},
        pool_size=20,
        max_overflow=20,
        **_JSON,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event decide how transactions start (see module docstring).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        # Bulk loads and dedupe sorts of million-row batches: a 16 MiB page cache per
        # connection instead of the 2 MiB default.
        cur.execute("PRAGMA cache_size=-16384")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Store:
    """Owns the engine; hands out sessions whose transaction the caller's block owns."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url)
        self.is_sqlite = self.url.startswith("sqlite")
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_engine = (
            self.engine.execution_options(sqlite_immediate=True) if self.is_sqlite else self.engine
        )
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read transaction (deferred on SQLite: never blocks writers)."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A unit of work: commits when the block ends and rolls back on error. The block may
        also roll back itself (an edge that answers a refusal) and go on reading."""
        with self._write_sessions() as session:
            try:
                yield session
            except BaseException:
                session.rollback()
                raise
            session.commit()

    def dispose(self) -> None:
        self.engine.dispose()
