"""The in-process queue runs a batch's verification chunks side by side: several chunks in
flight, a failed chunk retried by the retry policy, and every row verified exactly once
(a scripted engine through the factory seam, on a real SQLite store, the real queue)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import func, select

from apexverify.accounts import service as accounts
from apexverify.batches import service, tasks
from apexverify.batches.context import Services
from apexverify.batches.params import BatchParameters
from apexverify.batches.retry import RetryPolicy
from apexverify.composition import build_services, prepare_database
from apexverify.jobs.inprocess import InProcessQueue
from apexverify.settings import Settings
from apexverify.store.models import Batch, Record
from apexverify.verify.base import VerifyItem
from tests.support.fakes import FakeEngines, ScriptedVerifier

pytestmark = pytest.mark.fast

ROWS, CHUNK = 1000, 50


def _second_call_fails(call: int, _items: Sequence[VerifyItem]) -> None:
    if call == 2:
        raise RuntimeError("resolver unreachable")


@pytest.mark.parametrize("width", [1, 4])
async def test_parallel_chunks_verify_every_row_once_despite_a_failed_chunk(
    tmp_path: Path, width: int
) -> None:
    engine = ScriptedVerifier(script=_second_call_fails, delay=0.05)
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        data_dir=tmp_path / "var",
        verify_chunk_size=CHUNK,
        verify_parallel_chunks=width,
        parse_workers=1,
    )
    services = build_services(
        settings,
        engines=FakeEngines(engine),
        retry=RetryPolicy(base_seconds=0.01, cap_seconds=0.01),
    )
    prepare_database(services)
    queue = services.queue
    assert isinstance(queue, InProcessQueue)
    with services.store.write() as session:
        account, _key = accounts.create_account(session, "t", email_credits=10_000)
    account_id = account.id
    await queue.start(())
    tasks.register(services)
    try:
        batch_uuid = await _launched(services, account_id)
        await queue.drain()
    finally:
        await queue.stop()

    assert engine.most_running == width
    assert engine.calls == ROWS // CHUNK + 1  # the failed chunk ran again
    counts = Counter(engine.verified)
    assert set(counts.values()) == {1}  # every address verified exactly once
    assert len(counts) == ROWS
    with services.store.read() as session:
        batch = session.scalars(select(Batch).where(Batch.uuid == batch_uuid)).one()
        verdicts = session.scalar(
            select(func.count(Record.verdict)).where(Record.batch_pk == batch.pk)
        )
    assert verdicts == ROWS
    assert batch.verified == ROWS
    assert batch.status == "verification_done"
    services.store.dispose()


async def _launched(services: Services, account_id: str) -> str:
    """Upload, parse (through the queue) and launch a batch of ``ROWS`` addresses."""
    batch_uuid = service.new_batch_uuid()
    path = service.upload_path(services, batch_uuid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"user{i}@example{i % 7}.com\n" for i in range(ROWS)))
    params = BatchParameters(type="email", target_country="US")
    with services.store.write() as session:
        service.create_batch(
            services,
            session,
            account_id,
            batch_uuid=batch_uuid,
            name="b",
            description=None,
            params=params,
            file_path=path,
            file_size=path.stat().st_size,
        )
    assert isinstance(services.queue, InProcessQueue)
    await services.queue.drain()
    with services.store.write() as session:
        assert service.launch(services, session, account_id, batch_uuid) == "ok"
    return batch_uuid
