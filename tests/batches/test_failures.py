"""Failure paths of a launched batch, in the fast tier: an engine that cannot work ends the
batch in internal_error with every unverified record refunded; a transient failure is retried
by the one retry policy and, when it never passes, ends the same way. Money is checked
against the ledger: its sum always equals the balance change."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from apexverify.verify.base import EngineUnavailable, VerifyItem
from tests.support.fakes import FakeEngines, ScriptedVerifier
from tests.support.fast import Lab, open_lab

pytestmark = pytest.mark.fast

ROWS, CHUNK = 20, 5
CONTENT = "".join(f"user{i}@example{i % 3}.com\n" for i in range(ROWS))


async def _launched(lab: Lab) -> tuple[str, str, str]:
    account_id, key = lab.account(email=100)
    batch_uuid = await lab.upload(key, CONTENT)
    launched = await lab.post(key, f"/v1/batch/{batch_uuid}")
    assert launched.json() == {"status": "ok"}
    assert lab.balance(account_id) == 100 - ROWS
    return account_id, key, batch_uuid


def _fails_from_call(n: int, exc: Exception) -> ScriptedVerifier:
    def script(call: int, _items: Sequence[VerifyItem]) -> None:
        if call >= n:
            raise exc

    return ScriptedVerifier(script=script)


async def test_an_unusable_engine_ends_the_batch_refunded(tmp_path: Path) -> None:
    engine = _fails_from_call(2, EngineUnavailable("phone lookup: the provider refused the key"))
    async with open_lab(tmp_path, FakeEngines(engine), verify_chunk_size=CHUNK) as lab:
        account_id, key, batch_uuid = await _launched(lab)
        await lab.queue.run_all()

        status = (await lab.get(key, f"/v1/batch/{batch_uuid}")).json()
        assert status["status"] == "internal_error"
        assert "the provider refused the key" in status["message"]
        assert engine.calls == 2  # no retry: it cannot pass
        # One chunk of 5 was verified (sandbox "valid" verdicts): the other 15 are refunded.
        assert lab.balance(account_id) == 100 - ROWS + (ROWS - CHUNK)
        assert lab.ledger_sum(account_id) == lab.balance(account_id)
        details = (await lab.get(key, f"/v1/batch/{batch_uuid}/details")).json()
        assert details["status"] == "internal_error"
        # Settled once: running the queue again (a sweep, a late chunk) changes nothing.
        assert (await lab.post(key, f"/v1/batch/{batch_uuid}")).json() == {
            "status": "not_ready_for_verification"
        }
        await lab.queue.run_all()
        assert lab.balance(account_id) == 100 - CHUNK


async def test_a_transient_failure_is_retried_and_every_row_verified_once(tmp_path: Path) -> None:
    failures: list[str] = []

    def flaky(_call: int, items: Sequence[VerifyItem]) -> None:
        # The second chunk fails twice, then passes.
        if items[0].value == "user5@example2.com" and len(failures) < 2:
            failures.append(items[0].value)
            raise TimeoutError("resolver timed out")

    engine = ScriptedVerifier(script=flaky)
    async with open_lab(tmp_path, FakeEngines(engine), verify_chunk_size=CHUNK) as lab:
        account_id, key, batch_uuid = await _launched(lab)
        await lab.queue.run_all()

        status = (await lab.get(key, f"/v1/batch/{batch_uuid}")).json()
        assert status["status"] == "verification_done"
        assert status["stats"]["total_verification"] == ROWS
        assert sorted(engine.verified) == sorted(CONTENT.split())  # each address once
        retried = [
            j for j in lab.queue.history if j.task == "verify_chunk" and j.args["attempt"] > 1
        ]
        assert [j.args["attempt"] for j in retried] == [2, 3]
        assert lab.balance(account_id) == 100 - ROWS
        assert lab.ledger_sum(account_id) == lab.balance(account_id)


async def test_a_failure_that_never_passes_ends_refunded_after_the_last_attempt(
    tmp_path: Path,
) -> None:
    engine = _fails_from_call(1, ConnectionError("no route to host"))
    async with open_lab(tmp_path, FakeEngines(engine), verify_chunk_size=CHUNK) as lab:
        account_id, key, batch_uuid = await _launched(lab)
        await lab.queue.run_all()

        status = (await lab.get(key, f"/v1/batch/{batch_uuid}")).json()
        assert status["status"] == "internal_error"
        assert "3 times" in status["message"]
        assert lab.balance(account_id) == 100  # nothing was verified: all refunded
        assert lab.ledger_sum(account_id) == 100
