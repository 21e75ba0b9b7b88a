"""Verification throughput changes, in the fast tier (real SQLite, the real sandbox engine,
a queue run step by step): a big sandbox batch is cut into about a hundred chunks while a
small one keeps ``verify_chunk_size``; the sandbox decides a whole chunk with one result
per distinct verdict; and the caches are fed once, when the batch ends (done, cancelled or
failed), with the conclusive verdicts its engine decided and nothing else."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import select

from apexverify.batches import tasks
from apexverify.batches.repository import batches as batch_rows
from apexverify.batches.repository import records
from apexverify.store.models import CachedResult
from apexverify.verify.base import EngineUnavailable, Outcome, VerifyItem
from apexverify.verify.sandbox import BATCH_CHUNKS, SandboxVerifier, sandbox_email, sandbox_phone
from tests.batches.test_cancel import run_jobs
from tests.support.fakes import FakeEngines, ScriptedVerifier
from tests.support.fast import Lab, open_lab

pytestmark = pytest.mark.fast

MAGIC = ("valid", "invalid", "unknown", "catchall", "disposable", "role", "error", "someone")


def _content(rows: int) -> str:
    return "".join(f"{MAGIC[i % len(MAGIC)]}+{i}@example{i % 3}.com\n" for i in range(rows))


async def _launch(lab: Lab, key: str, content: str) -> str:
    batch_uuid = await lab.upload(key, content)
    assert (await lab.post(key, f"/v1/batch/{batch_uuid}")).json() == {"status": "ok"}
    return batch_uuid


def _chunk_sizes(lab: Lab) -> list[int]:
    return [len(j.args["ids"]) for j in lab.queue.pending if j.task == tasks.VERIFY_CHUNK]


def _cache(lab: Lab) -> dict[tuple[str, bytes], str]:
    with lab.services.store.read() as session:
        rows = session.execute(
            select(CachedResult.account_id, CachedResult.key_hash, CachedResult.verdict)
        )
        return {(scope, key): verdict for scope, key, verdict in rows}


def _conclusive_keys(lab: Lab, batch_uuid: str) -> dict[bytes, str]:
    """key_hash -> verdict of the batch's valid-format rows with a valid or wrong verdict."""
    with lab.services.store.read() as session:
        batch = batch_rows.by_uuid(session, batch_uuid)
        assert batch is not None
        found = session.execute(
            select(records.Record.key_hash, records.Record.verdict).where(
                records.Record.batch_pk == batch.pk,
                records.Record.kind == "valid",
                records.Record.verdict.in_(("valid", "wrong")),
            )
        )
        return {bytes(key): verdict for key, verdict in found}


@pytest.mark.parametrize(
    ("rows", "engine", "expected"),
    [
        # 2,000 due rows: about BATCH_CHUNKS chunks of 20, not 400 of 5.
        (2000, SandboxVerifier("email"), [2000 // BATCH_CHUNKS] * BATCH_CHUNKS),
        # A small batch keeps the configured chunks (what the cancel tests step through).
        (40, SandboxVerifier("email"), [5] * 8),
        # A simulated latency is per call: the configured chunks, as configured.
        (2000, SandboxVerifier("email", latency_ms=1), [5] * 400),
        # Any other engine: the configured chunks.
        (2000, ScriptedVerifier(), [5] * 400),
    ],
)
async def test_chunks_of_a_sandbox_batch(
    tmp_path: Path, rows: int, engine: SandboxVerifier | ScriptedVerifier, expected: list[int]
) -> None:
    async with open_lab(tmp_path, FakeEngines(engine), verify_chunk_size=5) as lab:
        _account_id, key = lab.account(sandbox=True, email=10_000)
        batch_uuid = await _launch(lab, key, _content(rows))
        await run_jobs(lab.queue, 1)  # the fan-out
        assert _chunk_sizes(lab) == expected
        await lab.queue.run_all()
        status = (await lab.get(key, f"/v1/batch/{batch_uuid}")).json()
        assert status["status"] == "verification_done"
        assert status["stats"]["total_verification"] == rows


def test_the_sandbox_decides_a_chunk_as_it_decides_each_value() -> None:
    emails = [f"{m}+{i}@{d}" for i, m in enumerate(MAGIC) for d in ("gmail.com", "Shop.IO")]
    emails *= 3
    decided = SandboxVerifier("email").decide(emails)
    assert [o.to_dict() for o in decided] == [sandbox_email(v).to_dict() for v in emails]
    # One result object per distinct verdict: 8 magic kinds, free domain or not (the unknown
    # local part "someone" decides like "valid", and "disposable" ignores the domain).
    assert len({id(o) for o in decided}) == 14
    phones = [f"+1555000000{d}" for d in range(10)] * 3
    decided = SandboxVerifier("phone").decide(phones)
    assert [o.to_dict() for o in decided] == [sandbox_phone(v).to_dict() for v in phones]
    assert len({id(o) for o in decided}) == 10


async def test_caches_are_fed_when_the_batch_ends_with_its_conclusive_verdicts(
    tmp_path: Path,
) -> None:
    engines = FakeEngines(SandboxVerifier("email"))
    async with open_lab(tmp_path, engines, verify_chunk_size=5) as lab:
        account_id, key = lab.account(sandbox=True, email=10_000)
        content = _content(40)
        batch_uuid = await _launch(lab, key, content)
        await run_jobs(lab.queue, 3)  # the fan-out and two chunks
        assert _cache(lab) == {}  # nothing cached while the batch runs
        await lab.queue.run_all()

        conclusive = _conclusive_keys(lab, batch_uuid)
        # valid, invalid, role and someone of every 8 rows: valid or wrong; the rest unknown.
        assert len(conclusive) == 20
        # The account scope only: sandbox results never enter the global cache.
        assert _cache(lab) == {(account_id, k): v for k, v in conclusive.items()}

        # A second batch of the same values reuses them.
        again = await _launch(lab, key, content)
        await lab.queue.run_all()
        stats = (await lab.get(key, f"/v1/batch/{again}")).json()["stats"]
        assert stats["total_verification_account_cache"] == 20
        # Cache hits are not fed again (nothing the engine decided): the entries stay.
        assert _cache(lab) == {(account_id, k): v for k, v in conclusive.items()}


async def test_a_cancelled_batch_feeds_the_caches_with_what_was_verified(tmp_path: Path) -> None:
    async with open_lab(tmp_path, verify_chunk_size=5) as lab:  # a real account
        account_id, key = lab.account(email=100)
        batch_uuid = await _launch(lab, key, _content(40))
        await run_jobs(lab.queue, 3)  # the fan-out and rows 0-9
        answer = await lab.post(key, f"/v1/batch/{batch_uuid}/cancel")
        assert answer.json()["records_cancelled"] == 30
        await lab.queue.run_all()

        conclusive = _conclusive_keys(lab, batch_uuid)
        assert len(conclusive) == 6  # rows 0-9: valid, invalid, role, someone, valid, invalid
        expected = {(scope, k): v for k, v in conclusive.items() for scope in (account_id, "")}
        assert _cache(lab) == expected  # the account and the global cache; no cancelled row


async def test_a_failed_batch_feeds_the_caches_with_what_was_verified(tmp_path: Path) -> None:
    def third_call_refused(call: int, _items: Sequence[VerifyItem]) -> None:
        if call == 3:
            raise EngineUnavailable("sandbox: credentials refused")

    engines = FakeEngines(ScriptedVerifier(script=third_call_refused))
    async with open_lab(tmp_path, engines, verify_chunk_size=5) as lab:
        account_id, key = lab.account(sandbox=True, email=100)
        batch_uuid = await _launch(lab, key, _content(40))
        await lab.queue.run_all()

        status = (await lab.get(key, f"/v1/batch/{batch_uuid}")).json()
        assert status["status"] == "internal_error"
        conclusive = _conclusive_keys(lab, batch_uuid)
        assert len(conclusive) == 6  # rows 0-9, verified before the refusal
        assert _cache(lab) == {(account_id, k): v for k, v in conclusive.items()}
        assert lab.ledger_sum(account_id) == lab.balance(account_id)


async def test_sandbox_chunks_run_one_at_a_time_off_the_event_loop(tmp_path: Path) -> None:
    """Four chunk jobs at once (as the in-process queue runs them): the sandbox's decisions,
    pure CPU, never overlap and never run on the event loop's thread, whose answers would
    otherwise wait for them (docs/benchmarks.md, the status endpoint under load)."""
    sandbox = SandboxVerifier("email")
    decide = sandbox.decide
    active, most, threads = 0, 0, set()
    guard = threading.Lock()

    def watched(values: Sequence[str]) -> list[Outcome]:
        nonlocal active, most
        with guard:
            active += 1
            most = max(most, active)
            threads.add(threading.get_ident())
        time.sleep(0.02)  # widens the window in which a second chunk could overlap
        try:
            return decide(values)
        finally:
            with guard:
                active -= 1

    sandbox.decide = watched  # type: ignore[method-assign]
    async with open_lab(tmp_path, FakeEngines(sandbox), verify_chunk_size=5) as lab:
        _account_id, key = lab.account(sandbox=True, email=10_000)
        batch_uuid = await _launch(lab, key, _content(40))
        await run_jobs(lab.queue, 1)  # the fan-out
        jobs = [j for j in lab.queue.pending if j.task == tasks.VERIFY_CHUNK]
        assert len(jobs) == 8
        for job in jobs:
            lab.queue.pending.remove(job)
        await asyncio.gather(*(lab.queue.tasks[j.task](**j.args) for j in jobs))
        await lab.queue.run_all()
        status = (await lab.get(key, f"/v1/batch/{batch_uuid}")).json()
    assert status["status"] == "verification_done"
    assert most == 1
    assert threads
    assert threading.get_ident() not in threads
