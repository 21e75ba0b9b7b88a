"""The job runner interface: in-process by default, procrastinate when scaled out.

Tasks are plain async functions registered by name (``batches/tasks.py``); their arguments
are IDs and the task reloads the rows it needs, so a task can run on any machine and be
retried safely.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

Task = Callable[..., Awaitable[None]]


class JobRunner(ABC):
    # True when jobs run in other processes/machines (procrastinate): the batches feature then
    # splits verification into chunk jobs that many workers share.
    distributed: bool = False

    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}

    def register(self, name: str, task: Task) -> None:
        self.tasks[name] = task

    @abstractmethod
    def defer(self, name: str, *, lock: str, **kwargs: Any) -> None:
        """Run task ``name`` with ``kwargs`` in the background. Tasks sharing a ``lock`` run
        one at a time, in submission order."""

    def defer_with(self, session: Session, name: str, *, lock: str, **kwargs: Any) -> None:
        """Defer as part of ``session``'s transaction: the job exists if and only if the
        transaction commits. This default sends it right after the commit (nothing on
        rollback); a runner whose queue lives in the same database enqueues inside it."""
        event.listen(
            session, "after_commit", lambda _s: self.defer(name, lock=lock, **kwargs), once=True
        )

    @abstractmethod
    async def start(self) -> None:
        """Begin executing work (and resume what a previous process left unfinished)."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop executing; unfinished work stays in the database for the next start."""
