"""A running batch that cannot move forward says so, and a stall has a deadline.

The engine here answers every address of a blocked domain with a ``Retry`` (what the email
engine does for an MX that never greets, greylisting or an unhealthy resolver). The batch's
status then carries ``stall`` (why, since when, next attempt) next to ``progress``; one log
line marks the stall and one its end; past ``stall_deadline_seconds`` the rest ends
``unknown`` with the reason in each record, refunded."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from apexverify.verify.base import Outcome, Retry, Verifier, VerifyContext, VerifyItem
from apexverify.verify.sandbox import SandboxVerifier
from tests.support.fakes import FakeEngines
from tests.support.fast import Lab, open_lab

pytestmark = pytest.mark.fast

ROWS, CHUNK = 20, 5
CONTENT = "".join(f"user{i}@example{i % 3}.com\n" for i in range(ROWS))
BLOCKED = {f"user{i}@example1.com" for i in range(ROWS) if i % 3 == 1}
REASON = "timeout: mx.example.com accepted the connection but never greeted"


class BlockingVerifier(Verifier):
    """Sandbox verdicts, except ``Retry`` (after 1 s) for addresses ``blocked`` says."""

    record_type = "email"

    def __init__(self, blocked: set[str] | None = None) -> None:
        self.blocked = blocked  # None: every address
        self._sandbox = SandboxVerifier("email")

    async def verify_many(
        self, items: Sequence[VerifyItem], context: VerifyContext
    ) -> list[Outcome]:
        decided = await self._sandbox.verify_many(items, context)
        return [
            Retry(after_seconds=1, reason=REASON)
            if self.blocked is None or item.value in self.blocked
            else outcome
            for item, outcome in zip(items, decided, strict=True)
        ]


async def _launch(lab: Lab) -> tuple[str, str, str]:
    account_id, key = lab.account(email=100)
    batch_uuid = await lab.upload(key, CONTENT)
    launched = await lab.post(key, f"/v1/batch/{batch_uuid}")
    assert launched.json() == {"status": "ok"}
    return account_id, key, batch_uuid


async def _after_retry_delay(lab: Lab) -> None:
    await asyncio.sleep(1.1)  # the engine's Retry: whole seconds, at least 1
    await lab.queue.run_due()


async def test_a_batch_that_decides_nothing_shows_its_stall_then_resumes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = BlockingVerifier()
    caplog.set_level(logging.INFO, logger="apexverify.batches")
    async with open_lab(tmp_path, FakeEngines(engine), verify_chunk_size=CHUNK) as lab:
        _account, key, batch_uuid = await _launch(lab)
        await lab.queue.run_due()

        for path in (f"/v1/batch/{batch_uuid}", f"/v1/batch/{batch_uuid}/details"):
            body = (await lab.get(key, path)).json()
            assert body["status"] == "verification_ongoing"
            assert body["progress"] == {"verified": 0, "total": ROWS}
            stall = body["stall"]
            assert REASON in stall["reason"]
            assert stall["since"]
            assert stall["retry_at"]

        engine.blocked = set()  # the network is back
        await _after_retry_delay(lab)
        body = (await lab.get(key, f"/v1/batch/{batch_uuid}")).json()
        assert body["status"] == "verification_done"
        assert body["stats"]["total_verification_unknown"] == 0

    lines = [r.getMessage() for r in caplog.records if batch_uuid in r.getMessage()]
    assert len([line for line in lines if " stalled: " in line]) == 1, lines
    assert len([line for line in lines if " resumed" in line]) == 1, lines


async def test_a_moving_batch_has_no_stall(tmp_path: Path) -> None:
    async with open_lab(
        tmp_path, FakeEngines(BlockingVerifier(set())), verify_chunk_size=CHUNK
    ) as lab:
        _account, key, batch_uuid = await _launch(lab)
        status = (await lab.get(key, f"/v1/batch/{batch_uuid}")).json()
        assert status["stall"] is None
        assert status["progress"]["verified"] == 0
        await lab.queue.run_due()
        assert (await lab.get(key, f"/v1/batch/{batch_uuid}")).json()["status"] == (
            "verification_done"
        )


async def test_past_the_deadline_the_rest_ends_unknown_with_the_reason_refunded(
    tmp_path: Path,
) -> None:
    engine = BlockingVerifier(BLOCKED)
    async with open_lab(
        tmp_path, FakeEngines(engine), verify_chunk_size=CHUNK, stall_deadline_seconds=0.5
    ) as lab:
        account_id, key, batch_uuid = await _launch(lab)
        await lab.queue.run_due()
        # The first pass decided the others: the batch moved. Its retry decides nothing.
        assert (await lab.get(key, f"/v1/batch/{batch_uuid}")).json()["stall"] is None
        await _after_retry_delay(lab)
        stalled = (await lab.get(key, f"/v1/batch/{batch_uuid}")).json()
        assert stalled["status"] == "verification_ongoing"
        assert stalled["stall"] is not None
        for _ in range(2):  # retries keep failing until the deadline passes
            await _after_retry_delay(lab)

        status = (await lab.get(key, f"/v1/batch/{batch_uuid}")).json()
        assert status["status"] == "verification_done"
        assert status["stats"]["total_verification_unknown"] == len(BLOCKED)
        assert status["stats"]["total_verification_valid"] == ROWS - len(BLOCKED)
        # The blocked addresses are refunded in full; the ledger explains the balance.
        assert lab.balance(account_id) == 100 - (ROWS - len(BLOCKED))
        assert lab.ledger_sum(account_id) == lab.balance(account_id)

        export = (await lab.get(key, f"/v1/batch/{batch_uuid}/export", format="json")).json()
        rows = {value: row for value, row in export.items() if "@" in value}  # keyed by value
        assert len(rows) == ROWS
        for address in BLOCKED:
            assert rows[address]["unknown"] is True
            assert rows[address]["evidence"] == "stalled"
            assert REASON in rows[address]["reason"]
        assert all(rows[a]["valid"] for a in rows if a not in BLOCKED)
