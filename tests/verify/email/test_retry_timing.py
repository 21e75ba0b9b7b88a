"""The batch runner honours ``Retry.not_before`` (issue #14, part 3).

An engine sets ``not_before`` when the greylisting ``4xx`` arrives; ``store()`` must keep
that time (not ``now + after_seconds`` when the chunk ends), the delayed fan-out must run at
it even when a fan-out is already waiting for a later time, and an item the engine held back
unprobed keeps its attempt count.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import select

from apexverify.batches.tasks import VERIFY_BATCH
from apexverify.store.models import Record
from apexverify.verify.base import Outcome, Retry, Verifier, VerifyContext, VerifyItem
from apexverify.verify.sandbox import SandboxVerifier
from tests.support.fakes import FakeEngines
from tests.support.fast import Lab, open_lab

pytestmark = pytest.mark.fast

DELAY = 2.0
# One chunk per pair of rows, in file order: a far retry first (its fan-out is deferred for
# the stall check, 15 s), then the greylisted address whose retry is due in 2 s.
ROWS = ["far@example.com", "a@example.com", "grey@example.com", "held@example.com"]


class TimedVerifier(Verifier):
    """Sandbox verdicts, except on the first attempt: ``far`` retries in 300 s, ``grey`` is
    greylisted (due 2 s after its 4xx, although ``after_seconds`` says 300), ``held`` is
    held back unprobed for 1 s. Records when each value was verified."""

    record_type = "email"

    def __init__(self) -> None:
        self._sandbox = SandboxVerifier("email")
        self.calls: dict[str, list[tuple[float, int]]] = {}

    async def verify_many(
        self, items: Sequence[VerifyItem], context: VerifyContext
    ) -> list[Outcome]:
        decided = await self._sandbox.verify_many(items, context)
        now = time.time()
        outcomes: list[Outcome] = []
        for item, outcome in zip(items, decided, strict=True):
            self.calls.setdefault(item.value, []).append((now, item.attempt))
            local = item.value.partition("@")[0]
            first = len(self.calls[item.value]) == 1
            if first and local == "far":
                outcome = Retry(300.0, "temporary: far", not_before=now + 300)
            elif first and local == "grey":
                outcome = Retry(300.0, "temporary: greylisted", not_before=now + DELAY)
            elif first and local == "held":
                outcome = Retry(1.0, "held_back: paced", not_before=now + 1, consumes_attempt=False)
            outcomes.append(outcome)
        return outcomes


def _records(lab: Lab) -> dict[str, Record]:
    with lab.services.store.read() as session:
        return {r.value: r for r in session.scalars(select(Record))}


async def test_store_keeps_not_before_and_the_fan_out_runs_at_it(tmp_path: Path) -> None:
    engine = TimedVerifier()
    async with open_lab(tmp_path, FakeEngines(engine), verify_chunk_size=2) as lab:
        _account, key = lab.account(email=100)
        batch_uuid = await lab.upload(key, "\n".join(ROWS) + "\n")
        assert (await lab.post(key, f"/v1/batch/{batch_uuid}")).json() == {"status": "ok"}
        await lab.queue.run_due()

        grey_4xx = engine.calls["grey@example.com"][0][0]
        rows = _records(lab)
        assert rows["grey@example.com"].retry_at == math.ceil(grey_4xx + DELAY)  # not +300
        assert rows["grey@example.com"].attempts == 1
        assert rows["held@example.com"].attempts == 0  # held back: no attempt spent
        later = sorted(j.run_at or 0 for j in lab.queue.pending if j.task == VERIFY_BATCH)
        assert later[0] <= grey_4xx + DELAY + 1  # not swallowed by the 15 s stall check

        # The runner: delayed jobs run when due (here polled every 50 ms), until the
        # greylisted address was probed again (or long past its time).
        while len(engine.calls["grey@example.com"]) < 2 and time.time() < grey_4xx + 10:
            await asyncio.sleep(0.05)
            await lab.queue.run_due()
        status = (await lab.get(key, f"/v1/batch/{batch_uuid}")).json()

    reprobed, attempt = engine.calls["grey@example.com"][1]
    assert attempt == 2
    assert DELAY <= reprobed - grey_4xx <= DELAY + 2.0  # re-probed within 2 s of the delay
    assert engine.calls["held@example.com"][1][1] == 1  # same attempt again
    assert status["progress"]["verified"] == 3  # far still waits for its retry
