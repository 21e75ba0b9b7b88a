"""The unit of work (``store/db.py``) on a real SQLite file: ``Store.write()`` commits when the
block ends and rolls back when it raises; ``on_commit`` callbacks run only after a commit and
``on_rollback`` ones only after a rollback; ``JobQueue.defer_with`` enqueues if and only if
the transaction commits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.orm import Session

from apexverify.store.db import Store, on_commit, on_rollback
from tests.support.fakes import RecordingQueue

pytestmark = pytest.mark.fast

metadata = MetaData()
notes = Table(
    "notes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("text", String(64), nullable=False),
)


class Boom(Exception):
    pass


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'uow.sqlite'}")
    metadata.create_all(store.engine)
    yield store
    store.dispose()


def add(session: Session, text: str) -> None:
    session.execute(insert(notes).values(text=text))


def add_then_fail(session: Session, text: str) -> None:
    add(session, text)
    raise Boom


def count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(notes)) or 0)


def stored(store: Store) -> list[str]:
    with store.read() as session:
        return list(session.scalars(select(notes.c.text).order_by(notes.c.id)))


def fail_in(
    store: Store, body: Callable[[Session], None], error: BaseException | None = None
) -> None:
    """A unit of work whose block runs ``body`` and then raises ``error`` (a ``Boom``)."""
    with store.write() as session:
        body(session)
        raise error if error is not None else Boom


# -- commit and rollback -------------------------------------------------------------------


def test_on_commit_callbacks_run_after_the_commit_in_order(store: Store) -> None:
    events: list[str] = []
    with store.write() as session:
        add(session, "a")
        on_commit(session, lambda: events.append("first"))
        on_commit(session, lambda: events.append(f"second saw {stored(store)}"))
        on_rollback(session, lambda: events.append("rollback"))
        assert events == []  # nothing before the commit
    # After the commit: another connection already sees the row.
    assert events == ["first", "second saw ['a']"]
    assert stored(store) == ["a"]


def test_on_commit_callbacks_do_not_run_on_rollback(store: Store) -> None:
    events: list[str] = []
    error = Boom("refused")

    def body(session: Session) -> None:
        add(session, "a")
        on_commit(session, lambda: events.append("commit"))

    with pytest.raises(Boom) as raised:
        fail_in(store, body, error)
    assert raised.value is error  # re-raised as is
    assert events == []
    assert stored(store) == []  # rolled back


def test_on_rollback_callbacks_run_on_rollback_and_not_on_commit(store: Store) -> None:
    events: list[str] = []

    def body(session: Session) -> None:
        add(session, "a")
        on_rollback(session, lambda: events.append("rollback 1"))
        on_rollback(session, lambda: events.append("rollback 2"))
        on_commit(session, lambda: events.append("commit"))

    with pytest.raises(Boom):
        fail_in(store, body)
    assert events == ["rollback 1", "rollback 2"]

    events.clear()
    with store.write() as session:
        add(session, "b")
        on_rollback(session, lambda: events.append("rollback"))
    assert events == []
    assert stored(store) == ["b"]


def test_a_base_exception_rolls_back_too(store: Store) -> None:
    class Interrupted(BaseException):
        pass

    events: list[str] = []

    def body(session: Session) -> None:
        add(session, "a")
        on_commit(session, lambda: events.append("commit"))
        on_rollback(session, lambda: events.append("rollback"))

    with pytest.raises(Interrupted):
        fail_in(store, body, Interrupted())
    assert events == ["rollback"]
    assert stored(store) == []


def test_an_exception_after_a_flush_rolls_the_flushed_rows_back(store: Store) -> None:
    seen: list[int] = []

    def body(session: Session) -> None:
        add(session, "a")
        session.flush()
        seen.append(count(session))

    with pytest.raises(Boom):
        fail_in(store, body)
    assert seen == [1]  # visible inside the transaction
    assert stored(store) == []


def test_callbacks_run_once_and_do_not_leak_into_the_next_unit_of_work(store: Store) -> None:
    events: list[str] = []
    with store.write() as session:
        on_commit(session, lambda: events.append("commit"))
    with store.write() as session:
        add(session, "b")

    def body(session: Session) -> None:
        add(session, "c")
        on_rollback(session, lambda: events.append("rollback"))

    with pytest.raises(Boom):
        fail_in(store, body)
    with store.write() as session:
        add(session, "d")
    assert events == ["commit", "rollback"]
    assert stored(store) == ["b", "d"]


def test_a_commit_inside_the_block_runs_its_callbacks_once(store: Store) -> None:
    events: list[str] = []
    with store.write() as session:
        add(session, "a")
        on_commit(session, lambda: events.append("first"))
        session.commit()
        assert events == ["first"]
        add(session, "b")
        on_commit(session, lambda: events.append("second"))
    assert events == ["first", "second"]
    assert stored(store) == ["a", "b"]


# -- a block that rolls back itself --------------------------------------------------------


def test_a_block_that_rolls_back_itself_and_reads_on_commits_nothing(store: Store) -> None:
    """An edge answering a refusal: it rolls the work back, reads what it needs for the answer,
    and the block ends normally (its final commit commits an empty transaction)."""
    with store.write() as session:
        add(session, "kept")
    events: list[str] = []
    with store.write() as session:
        add(session, "refused")
        on_commit(session, lambda: events.append("commit before the rollback"))
        on_rollback(session, lambda: events.append("rollback"))
        session.rollback()
        assert events == ["rollback"]
        assert count(session) == 1  # reads on, in a new transaction
        on_commit(session, lambda: events.append("commit after the rollback"))
    assert events == ["rollback", "commit after the rollback"]
    assert stored(store) == ["kept"]


def test_callbacks_registered_before_the_first_statement_belong_to_the_unit_of_work(
    store: Store,
) -> None:
    # Registering begins the transaction: otherwise a rollback before any statement would be a
    # no-op for them (on_rollback lost, on_commit carried over to the next commit).
    events: list[str] = []
    with pytest.raises(Boom):
        # e.g. a stored upload, before the batch row is added
        fail_in(store, lambda session: on_rollback(session, lambda: events.append("rollback")))
    with store.write() as session:
        on_commit(session, lambda: events.append("commit"))
        session.rollback()  # the edge refused
        count(session)
    assert events == ["rollback"]


# -- savepoints ----------------------------------------------------------------------------


def test_a_savepoint_rolled_back_inside_keeps_the_outer_callbacks(store: Store) -> None:
    events: list[str] = []
    with store.write() as session:
        add(session, "outer")
        on_commit(session, lambda: events.append("commit"))
        on_rollback(session, lambda: events.append("rollback"))
        savepoint = session.begin_nested()
        add(session, "inner")
        savepoint.rollback()
        assert events == []
        assert count(session) == 1
    assert events == ["commit"]
    assert stored(store) == ["outer"]


def test_a_savepoint_rolled_back_by_an_exception_keeps_the_outer_callbacks(store: Store) -> None:
    events: list[str] = []
    with store.write() as session:
        add(session, "outer")
        on_commit(session, lambda: events.append("commit"))
        with pytest.raises(Boom), session.begin_nested():
            add_then_fail(session, "inner")
        add(session, "after")
    assert events == ["commit"]
    assert stored(store) == ["outer", "after"]


def test_a_released_savepoint_is_not_the_commit(store: Store) -> None:
    # SQLAlchemy dispatches after_commit for a RELEASE SAVEPOINT too.
    events: list[str] = []
    with store.write() as session:
        on_commit(session, lambda: events.append("commit"))
        with session.begin_nested():
            add(session, "inner")
        assert events == []  # the outer transaction has not committed yet
    assert events == ["commit"]


def test_a_released_savepoint_then_an_outer_rollback_runs_the_rollback_callbacks(
    store: Store,
) -> None:
    events: list[str] = []

    def body(session: Session) -> None:
        on_rollback(session, lambda: events.append("rollback"))
        on_commit(session, lambda: events.append("commit"))
        with session.begin_nested():  # what ProcrastinateQueue.defer_with does
            add(session, "inner")

    with pytest.raises(Boom):
        fail_in(store, body)
    assert stored(store) == []
    assert events == ["rollback"]


# -- defer_with ----------------------------------------------------------------------------


def test_defer_with_enqueues_when_the_transaction_commits(store: Store) -> None:
    queue = RecordingQueue()
    with store.write() as session:
        add(session, "a")
        queue.defer_with(
            session,
            "parse_batch",
            {"batch_uuid": "b1", "generation": 2},
            lock="batch:b1",
            dedupe_key="parse:b1",
            run_at=123.0,
            priority=10,
        )
        assert queue.pending == []  # not before the commit
    assert len(queue.pending) == 1
    job = queue.pending[0]
    assert (job.task, dict(job.args)) == ("parse_batch", {"batch_uuid": "b1", "generation": 2})
    assert (job.lock, job.dedupe_key, job.run_at, job.priority) == (
        "batch:b1",
        "parse:b1",
        123.0,
        10,
    )


def test_defer_with_enqueues_nothing_when_the_transaction_rolls_back(store: Store) -> None:
    queue = RecordingQueue()

    def body(session: Session) -> None:
        add(session, "a")
        queue.defer_with(session, "parse_batch", {"batch_uuid": "b1"})

    with pytest.raises(Boom):
        fail_in(store, body)
    assert queue.pending == []

    with store.write() as session:
        add(session, "b")
        queue.defer_with(session, "parse_batch", {"batch_uuid": "b2"})
        session.rollback()  # the edge refused: the job goes with the work
        count(session)
    assert queue.pending == []
    assert stored(store) == []


def test_defer_with_in_a_savepoint_rolled_back_keeps_the_outer_job(store: Store) -> None:
    queue = RecordingQueue()
    with store.write() as session:
        queue.defer_with(session, "outer", {"n": 1})
        with pytest.raises(Boom), session.begin_nested():
            add_then_fail(session, "inner")
    assert [job.task for job in queue.pending] == ["outer"]


def test_defer_with_sends_the_jobs_of_each_commit_once(store: Store) -> None:
    queue = RecordingQueue()
    with store.write() as session:
        queue.defer_with(session, "first", {"n": 1})
    with store.write() as session:
        queue.defer_with(session, "second", {"n": 2})
    assert [job.task for job in queue.pending] == ["first", "second"]
