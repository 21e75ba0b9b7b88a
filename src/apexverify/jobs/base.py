"""The job queue interface: in-process by default, procrastinate when scaled out.

Tasks are plain async functions registered by name; their arguments are JSON values (IDs) and
a task reloads the rows it needs, so it can run on any machine and be re-run safely. This
package knows nothing of what the tasks do: the batches feature registers them.

- ``lock``: jobs sharing a lock run one at a time, in submission order.
- ``dedupe_key``: a job is not enqueued while another with the same key is waiting or
  running (default: the task name plus its arguments).
- ``run_at``: epoch seconds before which the job does not start.
- ``priority``: higher runs first among jobs that are due.
"""

from __future__ import annotations

import asyncio
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from ..store.db import on_commit

log = logging.getLogger(__name__)

Task = Callable[..., Awaitable[None]]
JobArgs = Mapping[str, Any]


@dataclass(frozen=True)
class Job:
    task: str
    args: JobArgs
    lock: str | None = None
    dedupe_key: str | None = None
    run_at: float | None = None
    priority: int = 0

    @property
    def key(self) -> str:
        """The dedupe key: given, or the task name and its arguments."""
        if self.dedupe_key is not None:
            return self.dedupe_key
        return self.task + ":" + json.dumps(dict(self.args), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Periodic:
    """A function the executing process runs every ``seconds`` (first run at start)."""

    name: str
    seconds: float
    run: Callable[[], Awaitable[object]]


async def run_every(periodic: Periodic) -> None:
    """Run ``periodic`` until cancelled; a failed run is logged and the loop goes on."""
    while True:
        try:
            await periodic.run()
        except Exception:
            log.exception("%s failed", periodic.name)
        await asyncio.sleep(periodic.seconds)


class JobQueue(ABC):
    # True when jobs run in other processes (procrastinate workers), False when this process
    # runs them itself.
    distributed: bool = False

    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}

    def register(self, name: str, task: Task) -> None:
        self.tasks[name] = task

    def defer(
        self,
        task: str,
        args: JobArgs,
        *,
        lock: str | None = None,
        dedupe_key: str | None = None,
        run_at: float | None = None,
        priority: int = 0,
    ) -> bool:
        """Enqueue now, outside any transaction; False when deduplicated away."""
        return self.submit(Job(task, dict(args), lock, dedupe_key, run_at, priority))

    def defer_with(
        self,
        session: Session,
        task: str,
        args: JobArgs,
        *,
        lock: str | None = None,
        dedupe_key: str | None = None,
        run_at: float | None = None,
        priority: int = 0,
    ) -> None:
        """Enqueue as part of ``session``'s transaction: the job exists if and only if the
        transaction commits."""
        self.submit_with(session, Job(task, dict(args), lock, dedupe_key, run_at, priority))

    @abstractmethod
    def submit(self, job: Job) -> bool:
        """Enqueue ``job`` now; False when a job with its dedupe key is waiting or running."""

    def submit_with(self, session: Session, job: Job) -> None:
        """Enqueue ``job`` with ``session``'s transaction. This default sends it right after
        the commit (nothing on rollback); a queue that lives in the same database enqueues
        inside it."""
        on_commit(session, lambda: self.submit(job))

    @abstractmethod
    def active(self, task: str | None = None, **match: str) -> bool:
        """Is a job (of ``task``, when given) whose arguments include ``match`` waiting or
        running?"""

    @abstractmethod
    async def start(self, periodic: tuple[Periodic, ...] = ()) -> None:
        """Begin executing jobs (and the periodic functions) when this process executes."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop executing; unfinished work stays in the database for the next start."""
