"""The batch lifecycle (``batches/states.py``): the transition table as data, ``transition()``
as the one compare-and-set (on the status, and on the parse generation where it matters), and
the same rules seen through the HTTP API of the fast-tier lab: parameters frozen once
launched, a second launch answered without a second debit."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from apexverify.batches import states
from apexverify.batches.states import (
    BUSY,
    LAUNCHED,
    TRANSITIONS,
    UNFINISHED,
    BatchStatus,
    TransitionLost,
    allowed,
    transition,
)
from apexverify.batches.tasks import PARSE_BATCH
from apexverify.errors import BatchLocked
from apexverify.store.models import Batch, CreditMovement
from apexverify.verify.base import EngineUnavailable, VerifyItem
from tests.support.fakes import FakeEngines, ScriptedVerifier
from tests.support.fast import Lab, open_lab

pytestmark = pytest.mark.fast

PARSING, READY, ONGOING, DONE, ERROR = (
    BatchStatus.PARSING,
    BatchStatus.READY,
    BatchStatus.ONGOING,
    BatchStatus.DONE,
    BatchStatus.ERROR,
)
ROWS = 6
CONTENT = "".join(f"user{i}@example.com\n" for i in range(ROWS))
RELAUNCH_LOCKED = "The batch has been launched; it can no longer be re-parsed."


# -- the table as data ---------------------------------------------------------------------


def test_every_status_has_its_row_of_the_table() -> None:
    assert set(TRANSITIONS) == set(BatchStatus)
    for targets in TRANSITIONS.values():
        assert targets <= set(BatchStatus)
    assert [s.value for s in BatchStatus] == [
        "parsing_content",
        "ready_for_verification",
        "verification_ongoing",
        "verification_done",
        "internal_error",
    ]


def test_no_status_leaves_verification_done() -> None:
    assert TRANSITIONS[DONE] == frozenset()
    assert not any(allowed(DONE, to) for to in BatchStatus)


def test_a_launched_batch_never_goes_back_to_parsing_or_ready() -> None:
    assert TRANSITIONS[ONGOING] == {DONE, ERROR}
    # The only way into verification is a launch from ready_for_verification.
    assert {f for f, targets in TRANSITIONS.items() if ONGOING in targets} == {READY}
    # Nothing reaches ready_for_verification except a finished parse.
    assert {f for f, targets in TRANSITIONS.items() if READY in targets} == {PARSING}


def test_internal_error_can_only_be_reparsed() -> None:
    # A failed parse can be re-triggered; whether the batch was launched is the service's
    # check (launched_at), tested through the API below.
    assert TRANSITIONS[ERROR] == {PARSING}
    assert {f for f, targets in TRANSITIONS.items() if ERROR in targets} == {PARSING, ONGOING}


def test_only_parsing_moves_to_itself() -> None:
    # parsing -> parsing: a newer parse generation (PUT/PATCH while parsing).
    assert [s for s in BatchStatus if allowed(s, s)] == [PARSING]


def test_every_status_is_reachable_from_the_upload() -> None:
    seen, todo = {PARSING}, [PARSING]
    while todo:
        for to in TRANSITIONS[todo.pop()]:
            if to not in seen:
                seen.add(to)
                todo.append(to)
    assert seen == set(BatchStatus)


def test_the_derived_sets() -> None:
    assert {ONGOING, DONE} == LAUNCHED
    assert {PARSING, ONGOING} == BUSY
    assert set(UNFINISHED) == BUSY
    # Once launched, a batch stays launched.
    for status in LAUNCHED:
        assert TRANSITIONS[status] <= LAUNCHED | {ERROR}


def test_allowed_reads_the_table() -> None:
    for from_ in BatchStatus:
        for to in BatchStatus:
            assert allowed(from_, to) is (to in TRANSITIONS[from_])


# -- transition(): the compare-and-set -----------------------------------------------------


async def _ready_batch(lab: Lab, content: str = CONTENT) -> tuple[str, str, str]:
    account_id, key = lab.account(email=100)
    batch_uuid = await lab.upload(key, content)
    assert (await lab.get(key, f"/v1/batch/{batch_uuid}")).json()["status"] == READY
    return account_id, key, batch_uuid


def _load(lab: Lab, batch_uuid: str) -> Batch:
    with lab.services.store.read() as session:
        batch = session.scalars(select(Batch).where(Batch.uuid == batch_uuid)).one()
        session.expunge(batch)
        return batch


def _transition(
    lab: Lab, batch_uuid: str, from_: BatchStatus, to: BatchStatus, **kwargs: Any
) -> None:
    """One unit of work that reloads the batch and calls ``transition``."""
    with lab.services.store.write() as session:
        batch = session.scalars(select(Batch).where(Batch.uuid == batch_uuid)).one()
        transition(session, batch, from_, to, **kwargs)


async def test_a_transition_succeeds_once_and_a_second_one_from_the_same_state_loses(
    lab: Lab,
) -> None:
    _account, _key, batch_uuid = await _ready_batch(lab)
    stale = _load(lab, batch_uuid)  # another actor's copy, read while still ready
    generation = stale.parse_generation

    with lab.services.store.write() as session:
        batch = session.get(Batch, stale.pk)
        assert batch is not None
        transition(session, batch, READY, PARSING, parse_generation=generation + 1)
        # The object mirrors the row without being dirty (the UPDATE already ran).
        assert batch.status == PARSING
        assert batch.parse_generation == generation + 1
        assert batch not in session.dirty
        # The same session, again from the old state: the row moved on.
        with pytest.raises(TransitionLost):
            transition(session, batch, READY, ONGOING)
        assert batch.status == PARSING

    def race_lost() -> None:
        with lab.services.store.write() as session:
            transition(session, stale, READY, ONGOING, charged_milli=1)

    with pytest.raises(TransitionLost) as lost:
        race_lost()
    assert (lost.value.batch_uuid, lost.value.from_, lost.value.to) == (batch_uuid, READY, ONGOING)
    assert lost.value.status_code == 409
    assert stale.status == READY  # the loser's copy is left as it was

    row = _load(lab, batch_uuid)
    assert (row.status, row.parse_generation, row.charged_milli) == (
        PARSING,
        generation + 1,
        0,
    )


async def test_a_transition_not_in_the_table_raises_value_error_and_changes_nothing(
    lab: Lab,
) -> None:
    _account, _key, batch_uuid = await _ready_batch(lab)
    for from_, to in [(READY, DONE), (READY, ERROR), (DONE, PARSING), (ONGOING, READY)]:
        with pytest.raises(ValueError, match="not a transition"):
            _transition(lab, batch_uuid, from_, to)
    assert _load(lab, batch_uuid).status == READY
    assert not issubclass(TransitionLost, ValueError)  # a bug, not a lost race


async def test_a_stale_parse_generation_loses(lab: Lab) -> None:
    _account, _key, batch_uuid = await _ready_batch(lab)
    first = _load(lab, batch_uuid).parse_generation

    # A PUT/PATCH moved the batch to a new generation, still parsing.
    _transition(lab, batch_uuid, READY, PARSING, generation=first, parse_generation=first + 1)

    # The parse of the old generation finishing now must not publish its figures.
    with pytest.raises(TransitionLost):
        _transition(lab, batch_uuid, PARSING, READY, generation=first, to_verify=999)
    row = _load(lab, batch_uuid)
    assert (row.status, row.parse_generation) == (PARSING, first + 1)
    assert row.to_verify != 999

    # The current generation wins.
    _transition(lab, batch_uuid, PARSING, READY, generation=first + 1, to_verify=ROWS)
    assert _load(lab, batch_uuid).status == READY


async def test_the_parse_of_an_older_generation_does_not_publish(lab: Lab) -> None:
    """Through the tasks: the upload's parse (generation 1) runs after a PUT (generation 2)
    and leaves the batch to the newer parse, whose parameters decide the figures."""
    _account_id, key = lab.account(email=100)
    content = "a@example.com\na@example.com\nb@example.com\n"
    response = await lab.client.post(
        "/v1/batch",
        headers={"X-Api-Key": key},
        data={"name": "t", "type": "email", "target_country": "US"},
        files={"file": ("list.txt", content.encode(), "text/plain")},
    )
    assert response.status_code == 200, response.text
    batch_uuid = response.json()["batch_uuid"]
    put = await lab.client.put(
        f"/v1/batch/{batch_uuid}",
        headers={"X-Api-Key": key},
        json={"type": "phone", "target_country": "US"},
    )
    assert put.status_code == 200, put.text
    parses = [job for job in lab.queue.pending if job.task == PARSE_BATCH]
    assert [job.args["generation"] for job in parses] == [1, 2]

    # The old parse runs first: it finds its generation superseded and publishes nothing.
    old = parses[0]
    lab.queue.pending.remove(old)
    await lab.queue.tasks[old.task](**old.args)
    row = _load(lab, batch_uuid)
    assert (row.status, row.parse_generation, row.valid_count) == (PARSING, 2, 0)

    ran = await lab.queue.run_all()
    assert [j.args["generation"] for j in ran if j.task == PARSE_BATCH] == [2]
    row = _load(lab, batch_uuid)
    assert (row.status, row.parse_generation) == (READY, 2)
    # Generation 2's parameters decide: as phone numbers, none of these lines is valid (the
    # email parse of generation 1 would have found two to verify).
    assert row.record_type == "phone"
    assert (row.valid_count, row.to_verify) == (0, 0)
    assert row.wrong_count == 3


# -- through the API -----------------------------------------------------------------------


async def _put(lab: Lab, key: str, batch_uuid: str) -> tuple[int, dict[str, object]]:
    response = await lab.client.put(
        f"/v1/batch/{batch_uuid}",
        headers={"X-Api-Key": key},
        json={"type": "email", "target_country": "GB"},
    )
    return response.status_code, response.json()


async def _patch(lab: Lab, key: str, batch_uuid: str) -> tuple[int, dict[str, object]]:
    response = await lab.client.patch(f"/v1/batch/{batch_uuid}", headers={"X-Api-Key": key})
    return response.status_code, response.json()


async def _launch(lab: Lab, key: str, batch_uuid: str) -> object:
    response = await lab.post(key, f"/v1/batch/{batch_uuid}")
    assert response.status_code == 200, response.text
    return response.json()["status"]


def _debits(lab: Lab, batch_uuid: str) -> list[int]:
    with lab.services.store.read() as session:
        rows = session.scalars(
            select(CreditMovement).where(
                CreditMovement.batch_uuid == batch_uuid, CreditMovement.kind == "debit"
            )
        )
        return [row.amount_milli for row in rows]


async def _assert_locked(lab: Lab, key: str, batch_uuid: str) -> None:
    before = _load(lab, batch_uuid)
    assert await _put(lab, key, batch_uuid) == (400, {"message": BatchLocked.default_message})
    assert await _patch(lab, key, batch_uuid) == (400, {"message": RELAUNCH_LOCKED})
    after = _load(lab, batch_uuid)
    # Refused and rolled back: same status, generation and parameters; no parse deferred.
    assert (after.status, after.parse_generation, after.target_country) == (
        before.status,
        before.parse_generation,
        before.target_country,
    )
    assert PARSE_BATCH not in lab.queue.tasks_deferred()


async def test_put_and_patch_are_refused_once_launched(lab: Lab) -> None:
    account_id, key, batch_uuid = await _ready_batch(lab)
    # Before the launch, both re-parse (a new generation each).
    assert (await _put(lab, key, batch_uuid))[0] == 200
    assert (await _patch(lab, key, batch_uuid))[0] == 200
    assert _load(lab, batch_uuid).parse_generation == 3
    await lab.queue.run_all()

    assert await _launch(lab, key, batch_uuid) == "ok"
    assert _load(lab, batch_uuid).status == ONGOING
    await _assert_locked(lab, key, batch_uuid)

    await lab.queue.run_all()
    assert _load(lab, batch_uuid).status == DONE
    await _assert_locked(lab, key, batch_uuid)
    assert lab.balance(account_id) == 100 - ROWS
    assert lab.ledger_sum(account_id) == lab.balance(account_id)


async def test_a_launched_batch_that_failed_stays_locked(tmp_path: Path) -> None:
    """internal_error -> parsing_content is in the table (a failed parse can be re-run), but
    not for a batch whose verification failed after its launch."""

    def unusable(_call: int, _items: Sequence[VerifyItem]) -> None:
        raise EngineUnavailable("the provider refused the key")

    async with open_lab(tmp_path, FakeEngines(ScriptedVerifier(script=unusable))) as lab:
        account_id, key, batch_uuid = await _ready_batch(lab)
        assert await _launch(lab, key, batch_uuid) == "ok"
        await lab.queue.run_all()
        assert _load(lab, batch_uuid).status == ERROR
        await _assert_locked(lab, key, batch_uuid)
        assert await _launch(lab, key, batch_uuid) == "not_ready_for_verification"
        assert lab.balance(account_id) == 100  # refunded in full
        assert lab.ledger_sum(account_id) == lab.balance(account_id)


async def test_launching_twice_answers_already_ongoing_then_done_and_debits_once(
    lab: Lab,
) -> None:
    account_id, key, batch_uuid = await _ready_batch(lab)
    assert await _launch(lab, key, batch_uuid) == "ok"
    assert await _launch(lab, key, batch_uuid) == "verification_already_ongoing"
    assert lab.balance(account_id) == 100 - ROWS
    await lab.queue.run_all()
    assert await _launch(lab, key, batch_uuid) == "verification_already_done"
    await lab.queue.run_all()

    assert lab.balance(account_id) == 100 - ROWS
    assert lab.ledger_sum(account_id) == lab.balance(account_id)
    assert _debits(lab, batch_uuid) == [-ROWS * 1000]
    assert _load(lab, batch_uuid).charged_milli == ROWS * 1000


async def test_two_launches_at_once_debit_once(lab: Lab) -> None:
    account_id, key, batch_uuid = await _ready_batch(lab)
    answers = await asyncio.gather(*(_launch(lab, key, batch_uuid) for _ in range(4)))
    assert sorted(map(str, answers)) == ["ok", *["verification_already_ongoing"] * 3]
    await lab.queue.run_all()
    assert lab.balance(account_id) == 100 - ROWS
    assert lab.ledger_sum(account_id) == lab.balance(account_id)
    assert _debits(lab, batch_uuid) == [-ROWS * 1000]


async def test_launching_while_parsing_is_refused_and_free(lab: Lab) -> None:
    account_id, key, batch_uuid = await _ready_batch(lab)
    assert (await _patch(lab, key, batch_uuid))[0] == 200  # parsing again, not yet run
    assert _load(lab, batch_uuid).status == PARSING
    assert await _launch(lab, key, batch_uuid) == "not_ready_for_verification"
    assert lab.balance(account_id) == 100
    assert _debits(lab, batch_uuid) == []
    await lab.queue.run_all()
    assert await _launch(lab, key, batch_uuid) == "ok"
    assert lab.ledger_sum(account_id) == lab.balance(account_id) == 100 - ROWS


def test_launch_answers_cover_every_status_but_ready() -> None:
    from apexverify.batches.service import LAUNCH_ANSWERS

    assert set(LAUNCH_ANSWERS) == set(BatchStatus) - {READY}
    assert LAUNCH_ANSWERS[ONGOING] == "verification_already_ongoing"
    assert LAUNCH_ANSWERS[DONE] == "verification_already_done"
    assert states.ERROR in LAUNCH_ANSWERS
