"""Cancelling a running batch, in the fast tier: the queue is run a few jobs at a time so the
cancel lands in the middle. The records verified keep their verdicts, exactly the others end
``unknown``/cancelled and are refunded in full (with the verified inconclusive ones, as at a
normal end), the ledger sum always equals the balance, and whatever runs afterwards (queued
chunks, a chunk in flight, finalize, another cancel) changes nothing."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from apexverify.batches import service, states, verification
from apexverify.batches.repository import batches as batch_rows
from apexverify.store.models import CreditMovement
from apexverify.verify.base import VerifyItem
from tests.support.fakes import FakeEngines, RecordingQueue, ScriptedVerifier
from tests.support.fast import Lab, open_lab

pytestmark = pytest.mark.fast

CHUNK = 5
# 20 valid first occurrences in file order (the fake engine does not group by domain, so the
# chunks are rows 0-4, 5-9, ...): two inconclusive ones among the first ten; then a kept
# duplicate of a row verified early and one of a row that will be cancelled, and a malformed
# row (removed from the results by default).
FIRST = [f"user{i}@example-a.com" for i in range(10)]
FIRST[3], FIRST[7] = "unknown+3@example-a.com", "unknown+7@example-a.com"
REST = [f"user{i}@example-b.com" for i in range(10, 20)]
CONTENT = "\n".join([*FIRST, *REST, "USER1@EXAMPLE-A.COM", "USER15@EXAMPLE-B.COM", "nope"]) + "\n"
VALID = 20


async def run_jobs(queue: RecordingQueue, count: int) -> None:
    """Run the next ``count`` jobs the way ``run_all`` picks them (priority, then order)."""
    for _ in range(count):
        job = max(queue.pending, key=lambda j: j.priority)
        queue.pending.remove(job)
        queue.history.append(job)
        await queue.tasks[job.task](**job.args)


async def _launched(lab: Lab, content: str = CONTENT, **fields: str) -> tuple[str, str, str]:
    account_id, key = lab.account(email=100, phone=100)
    batch_uuid = await lab.upload(key, content, remove_duplicate="false", **fields)
    assert (await lab.post(key, f"/v1/batch/{batch_uuid}")).json() == {"status": "ok"}
    return account_id, key, batch_uuid


def _refund_rows(lab: Lab, batch_uuid: str) -> list[int]:
    with lab.services.store.read() as session:
        rows = session.query(CreditMovement).filter_by(batch_uuid=batch_uuid, kind="refund")
        return [row.amount_milli for row in rows]


async def test_cancel_in_the_middle_refunds_exactly_the_unverified(tmp_path: Path) -> None:
    async with open_lab(tmp_path, verify_chunk_size=CHUNK) as lab:
        account_id, key, batch_uuid = await _launched(lab)
        assert lab.balance(account_id) == 100 - VALID
        await run_jobs(lab.queue, 3)  # the fan-out, then the first two chunks: rows 0-9
        ongoing = (await lab.get(key, f"/v1/batch/{batch_uuid}")).json()
        assert ongoing["progress"] == {"verified": 10, "total": VALID}

        answer = await lab.post(key, f"/v1/batch/{batch_uuid}/cancel")
        assert answer.status_code == 200, answer.text
        # 10 never verified + the 2 inconclusive verified ones (APEXVERIFY_REFUND_UNKNOWN).
        assert answer.json() == {"status": "ok", "records_cancelled": 10, "refunded_credits": 12.0}
        await lab.queue.run_all()  # the chunks still queued find nothing to do

        assert lab.balance(account_id) == 100 - VALID + 12
        assert lab.ledger_sum(account_id) == lab.balance(account_id)
        assert _refund_rows(lab, batch_uuid) == [12_000]
        status = (await lab.get(key, f"/v1/batch/{batch_uuid}")).json()
        assert status["status"] == "verification_done"
        assert status["cancelled"] is True
        assert status["cancelled_at"].endswith("Z")
        assert status["refunded_credits"] == 12.0
        stats = status["stats"]
        assert stats["total_verification"] == VALID
        assert stats["total_verification_valid"] == 8
        assert stats["total_verification_unknown"] == 12  # cancelled rows count as unknown
        assert stats["total_verification_cancelled"] == 10
        assert stats["total_verification_duplicate"] == 2
        details = (await lab.get(key, f"/v1/batch/{batch_uuid}/details")).json()
        assert (details["cancelled"], details["cancelled_at"]) == (True, status["cancelled_at"])
        await _exports_keep_verdicts_and_mark_the_rest(lab, key, batch_uuid)

        # Afterwards: a second cancel and a launch say what the docs say.
        again = await lab.post(key, f"/v1/batch/{batch_uuid}/cancel")
        assert again.status_code == 409
        assert again.json() == {"message": "The batch was already cancelled."}
        relaunch = await lab.post(key, f"/v1/batch/{batch_uuid}")
        assert relaunch.json() == {"status": "verification_already_done"}
        assert lab.balance(account_id) == 100 - VALID + 12


async def _exports_keep_verdicts_and_mark_the_rest(lab: Lab, key: str, batch_uuid: str) -> None:
    exported = await lab.get(key, f"/v1/batch/{batch_uuid}/export", format="json")
    rows: dict[str, Any] = json.loads(exported.content)
    assert rows["user0@example-a.com"]["valid"] is True
    assert rows["unknown+3@example-a.com"]["unknown"] is True
    assert "evidence" not in rows["unknown+3@example-a.com"]  # verified: the engine's result
    # A kept duplicate shares the verdict of its first occurrence, verified or cancelled.
    assert rows["USER1@EXAMPLE-A.COM"]["quality"] == rows["user1@example-a.com"]["quality"]
    assert rows["USER1@EXAMPLE-A.COM"]["valid"] is True
    for value in (*REST, "USER15@EXAMPLE-B.COM"):
        assert rows[value]["unknown"] is True, value
        assert rows[value]["quality"] == rows[value]["result"] == "unknown"
        assert rows[value]["evidence"] == "cancelled"
        assert rows[value]["reason"] == "cancelled by the account before it was verified"
    assert rows["_statistics"]["stats"]["total_verification_cancelled"] == 10

    xlsx = await lab.get(key, f"/v1/batch/{batch_uuid}/export", format="xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content))["Results"]
    header, *body = list(sheet.values)
    table = {row[0]: dict(zip(header, row, strict=True)) for row in body}
    assert table["user0@example-a.com"]["quality"] == "good"
    assert table["user12@example-b.com"]["evidence"] == "cancelled"
    assert (
        table["USER15@EXAMPLE-B.COM"]["reason"] == "cancelled by the account before it was verified"
    )


async def test_a_chunk_in_flight_when_the_batch_is_cancelled_writes_nothing(
    tmp_path: Path,
) -> None:
    box: dict[str, str] = {}

    def cancel_during_third_chunk(call: int, _items: Sequence[VerifyItem]) -> None:
        if call == 3:  # rows 10-14 are with the engine while the account cancels
            with lab.services.store.write() as session:
                service.cancel(lab.services, session, box["account"], box["batch"])

    engine = ScriptedVerifier(script=cancel_during_third_chunk)
    async with open_lab(tmp_path, FakeEngines(engine), verify_chunk_size=CHUNK) as lab:
        box["account"], key, box["batch"] = await _launched(lab)
        await lab.queue.run_all()

        assert engine.calls == 3  # the two chunks queued behind it never reached the engine
        status = (await lab.get(key, f"/v1/batch/{box['batch']}")).json()
        assert status["stats"]["total_verification_cancelled"] == 10
        assert lab.balance(box["account"]) == 100 - VALID + 12
        assert lab.ledger_sum(box["account"]) == lab.balance(box["account"])
        with lab.services.store.read() as session:
            batch = batch_rows.by_uuid(session, box["batch"])
            assert batch is not None
            assert batch.verified == 10  # the late chunk's results were not counted
        rows = json.loads(
            (await lab.get(key, f"/v1/batch/{box['batch']}/export", format="json")).content
        )
        assert rows["user12@example-b.com"]["evidence"] == "cancelled"  # not overwritten


async def test_refusals_name_the_reason(tmp_path: Path) -> None:
    async with open_lab(tmp_path, verify_chunk_size=CHUNK) as lab:
        _account_id, key = lab.account(email=100)
        ready = await lab.upload(key, "user@example-a.com\n")
        refused = await lab.post(key, f"/v1/batch/{ready}/cancel")
        assert refused.status_code == 409
        assert "not running" in refused.json()["message"]
        assert "delete it instead" in refused.json()["message"]

        await lab.post(key, f"/v1/batch/{ready}")
        await lab.queue.run_all()
        finished = await lab.post(key, f"/v1/batch/{ready}/cancel")
        assert finished.status_code == 409
        assert "already finished" in finished.json()["message"]
        done = (await lab.get(key, f"/v1/batch/{ready}")).json()
        assert (done["cancelled"], done["cancelled_at"]) == (False, None)
        assert "total_verification_cancelled" not in done["stats"]

        missing = await lab.post(key, "/v1/batch/00000000-0000-0000-0000-000000000000/cancel")
        assert missing.status_code == 404
        _other_id, other_key = lab.account(email=100)
        assert (await lab.post(other_key, f"/v1/batch/{ready}/cancel")).status_code == 404


async def test_end_rest_settles_once_whoever_races(tmp_path: Path) -> None:
    async with open_lab(tmp_path, verify_chunk_size=CHUNK) as lab:
        account_id, _key, batch_uuid = await _launched(lab)
        await run_jobs(lab.queue, 2)  # fan-out and one chunk
        ended = verification.end_rest(
            lab.services, batch_uuid, reason="r", evidence="cancelled", cancelled=True
        )
        assert ended == VALID - CHUNK
        # Every later ender is a no-op: another end, a finalize, a failure.
        again = verification.end_rest(
            lab.services, batch_uuid, reason="r", evidence="cancelled", cancelled=True
        )
        assert again is None
        assert verification.finalize(lab.services, batch_uuid) is False
        assert verification.fail(lab.services, batch_uuid, "late") is False
        await lab.queue.run_all()
        assert len(_refund_rows(lab, batch_uuid)) == 1
        # Refunded: the 15 never verified and unknown+3 of the first chunk.
        assert lab.balance(account_id) == 100 - VALID + (VALID - CHUNK) + 1
        assert lab.ledger_sum(account_id) == lab.balance(account_id)


async def test_a_lost_race_rolls_the_row_updates_back(tmp_path: Path) -> None:
    async with open_lab(tmp_path, verify_chunk_size=CHUNK) as lab:
        _account_id, _key, batch_uuid = await _launched(lab)

        def end_after_another_actor_moved_it() -> None:
            with lab.services.store.write() as session:
                batch = batch_rows.by_uuid(session, batch_uuid)
                assert batch is not None
                # Another actor moves the batch on between the read and the compare-and-set.
                batch_rows.set_status_if(session, batch.pk, states.ONGOING, states.ERROR)
                verification.end_rest_in(
                    session, lab.services.settings, batch, reason="r", evidence="x", cancelled=True
                )

        with pytest.raises(states.TransitionLost):
            end_after_another_actor_moved_it()
        await lab.queue.run_all()  # nothing was ended: verification runs to the normal end
        with lab.services.store.read() as session:
            done = batch_rows.by_uuid(session, batch_uuid)
            assert done is not None
            assert done.status == states.DONE
            assert done.cancelled_at is None
            assert done.stats is not None
            assert "total_verification_x" not in done.stats


async def test_a_stalled_phone_batch_ends_with_the_phone_unknown_shape(tmp_path: Path) -> None:
    phones = "".join(f"+1415555010{i}\n" for i in range(10))
    async with open_lab(
        tmp_path, FakeEngines(ScriptedVerifier("phone")), verify_chunk_size=CHUNK
    ) as lab:
        account_id, key, batch_uuid = await _launched(lab, phones, type="phone")
        await run_jobs(lab.queue, 2)
        ended = verification.end_rest(
            lab.services,
            batch_uuid,
            reason="the lookup provider kept answering later",
            evidence="stalled",
            cancelled=False,
        )
        assert ended == 5
        status = (await lab.get(key, f"/v1/batch/{batch_uuid}")).json()
        assert (status["cancelled"], status["cancelled_at"]) == (False, None)
        assert status["stats"]["total_verification_stalled"] == 5
        assert lab.balance(account_id, "phone") == 100 - 10 + 5 + _unknowns(status)
        rows = json.loads(
            (await lab.get(key, f"/v1/batch/{batch_uuid}/export", format="json")).content
        )
        last = rows["+14155550109"]
        assert (last["valid"], last["wrong"], last["unknown"]) == (False, False, True)
        assert (last["type"], last["status"]) == ("unknown", "inconclusive")
        assert (last["evidence"], last["reason"]) == (
            "stalled",
            "the lookup provider kept answering later",
        )
        assert "country" in last  # the engine's key set, nothing looked up
        assert last["country"] is None


def _unknowns(status: dict[str, Any]) -> int:
    """Inconclusive results verified before the end (refunded under the default policy)."""
    return int(status["stats"]["total_verification_unknown"]) - int(
        status["stats"]["total_verification_stalled"]
    )
