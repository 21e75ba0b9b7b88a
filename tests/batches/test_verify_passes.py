"""The embedded runner's verification passes: several chunks in flight, a failed chunk retried
on a later pass, and every row verified exactly once (driven directly, with a scripted
engine, on a real SQLite store)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from apexverify.accounts import service as accounts
from apexverify.api.app import build_services
from apexverify.batches import service, states, verify_task
from apexverify.batches.params import BatchParameters
from apexverify.batches.parse_task import parse_whole
from apexverify.settings import Settings
from apexverify.store.migrate import upgrade
from apexverify.store.models import Batch, Record
from apexverify.verify.base import Outcome, Verifier, VerifyContext, VerifyItem
from apexverify.verify.sandbox import sandbox_email

ROWS, CHUNK = 1000, 50


class ScriptedEngine(Verifier):
    """Sandbox verdicts after a short wait; its second call fails (an engine error)."""

    record_type = "email"

    def __init__(self) -> None:
        self.calls = 0
        self.running = 0
        self.most_running = 0
        self.verified: Counter[str] = Counter()

    async def verify_many(
        self, items: Sequence[VerifyItem], context: VerifyContext
    ) -> list[Outcome]:
        self.calls += 1
        call = self.calls
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(0.1)
            if call == 2:
                raise RuntimeError("resolver unreachable")
            self.verified.update(item.value for item in items)
            return [sandbox_email(item.value) for item in items]
        finally:
            self.running -= 1


def _ongoing_batch(tmp_path: Path, width: int) -> tuple[object, Batch]:
    settings = Settings().replace(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        data_dir=tmp_path / "var",
        verify_chunk_size=CHUNK,
        verify_parallel_chunks=width,
        parse_workers=1,
    )
    services = build_services(settings)
    upgrade(services.store)
    with services.store.write() as session:
        account, _key = accounts.create_account(session, "t", sandbox=True)
    batch_uuid = service.new_batch_uuid()
    path = service.upload_path(services, batch_uuid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"user{i}@example{i % 7}.com\n" for i in range(ROWS)))
    params = BatchParameters(type="email", target_country="US")
    service.create_batch(
        services,
        account.id,
        batch_uuid=batch_uuid,
        name="b",
        description=None,
        params=params,
        file_path=path,
        file_size=path.stat().st_size,
    )
    parse_whole(services, batch_uuid, 1)
    with services.store.write() as session:
        session.execute(update(Batch).where(Batch.uuid == batch_uuid).values(status=states.ONGOING))
    return services, service.load_batch(services, account.id, batch_uuid)


@pytest.mark.parametrize("width", [1, 4])
async def test_parallel_chunks_verify_every_row_once_despite_a_failed_chunk(
    tmp_path: Path, width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify_task, "_FAILURE_BACKOFF_CAP", 0.05)
    services, batch = _ongoing_batch(tmp_path, width)
    engine = ScriptedEngine()
    await verify_task._verify_all(services, batch, engine, VerifyContext(), False)  # type: ignore[arg-type]

    assert engine.most_running == width
    assert engine.calls == ROWS // CHUNK + 1  # the failed chunk ran again on the next pass
    assert set(engine.verified.values()) == {1}  # every address verified exactly once
    assert len(engine.verified) == ROWS
    with services.store.read() as session:  # type: ignore[attr-defined]
        verdicts = session.scalar(
            select(func.count(Record.verdict)).where(Record.batch_pk == batch.pk)
        )
        counter = session.scalar(select(Batch.verified).where(Batch.pk == batch.pk))
    assert verdicts == ROWS
    assert counter == ROWS
    services.store.dispose()  # type: ignore[attr-defined]
