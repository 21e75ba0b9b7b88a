"""Fakes of the service interfaces for the fast tier: real implementations of ``JobQueue``
and ``VerifierFactory`` that a test drives step by step, no monkeypatching."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from apexverify.jobs.base import Job, JobQueue, Periodic
from apexverify.verify.base import Outcome, RecordType, Verifier, VerifyContext, VerifyItem
from apexverify.verify.sandbox import SandboxVerifier


class RecordingQueue(JobQueue):
    """Keeps every deferred job; ``run_all`` runs them (delayed ones at once, in priority
    then submission order) until none is left, and ``history`` keeps what ran."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[Job] = []
        self.history: list[Job] = []

    def submit(self, job: Job) -> bool:
        if any(j.key == job.key for j in self.pending):
            return False
        self.pending.append(job)
        return True

    def active(self, task: str | None = None, **match: str) -> bool:
        return any(
            (task is None or j.task == task) and all(j.args.get(k) == v for k, v in match.items())
            for j in self.pending
        )

    async def start(self, periodic: tuple[Periodic, ...] = ()) -> None:
        """Nothing runs by itself: the test calls ``run_all``."""

    async def stop(self) -> None:
        """Nothing to stop."""

    async def run_all(self, limit: int = 10_000) -> list[Job]:
        ran: list[Job] = []
        while self.pending:
            assert len(ran) < limit, "jobs keep deferring jobs"
            job = max(self.pending, key=lambda j: j.priority)  # first of the highest priority
            self.pending.remove(job)
            self.history.append(job)
            ran.append(job)
            await self.tasks[job.task](**job.args)
        return ran

    async def run_due(self, limit: int = 10_000) -> list[Job]:
        """Like ``run_all``, but only jobs due by the real clock when the pass starts: a
        delayed job waits for the next pass, even when this one outlasts its delay (a slow
        machine would otherwise run a 1 s retry in the pass that deferred it)."""
        ran: list[Job] = []
        cutoff = time.time()
        while due := [j for j in self.pending if j.run_at is None or j.run_at <= cutoff]:
            assert len(ran) < limit, "jobs keep deferring jobs"
            job = max(due, key=lambda j: j.priority)
            self.pending.remove(job)
            self.history.append(job)
            ran.append(job)
            await self.tasks[job.task](**job.args)
        return ran

    def tasks_deferred(self) -> list[str]:
        return [job.task for job in self.pending]


class ScriptedVerifier(Verifier):
    """Sandbox verdicts, except where ``script(call_number, items)`` raises; counts calls
    and concurrency."""

    def __init__(
        self,
        record_type: RecordType = "email",
        script: Callable[[int, Sequence[VerifyItem]], None] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.record_type = record_type
        self._sandbox = SandboxVerifier(record_type)
        self._script = script
        self._delay = delay
        self.calls = 0
        self.running = 0
        self.most_running = 0
        self.verified: list[str] = []

    async def verify_many(
        self, items: Sequence[VerifyItem], context: VerifyContext
    ) -> list[Outcome]:
        self.calls += 1
        call = self.calls
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if self._delay:
                await asyncio.sleep(self._delay)
            if self._script is not None:
                self._script(call, items)
            self.verified.extend(item.value for item in items)
            return await self._sandbox.verify_many(items, context)
        finally:
            self.running -= 1


class FakeEngines:
    """A ``VerifierFactory`` handing out one shared engine, for real and sandbox accounts."""

    def __init__(self, engine: Verifier | None = None) -> None:
        self.engine = engine or ScriptedVerifier()
        self.built = 0

    def build(self, record_type: RecordType, *, sandbox: bool) -> Verifier:
        self.built += 1
        return self.engine

    async def aclose(self) -> None:
        await self.engine.aclose()
