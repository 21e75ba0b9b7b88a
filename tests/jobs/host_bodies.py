"""Bodies and a context for the process host's tests (``test_process_host.py``): module
level, so the host process imports them by name."""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass, field

from apexverify.jobs.base import Job, JobQueue


@dataclass
class Context:
    queue: JobQueue
    built_in: int = field(default_factory=os.getpid)
    bodies: int = 0
    released: int = 0


def build(queue: JobQueue) -> Context:
    return Context(queue)


def release(context: Context) -> None:
    context.released += 1


def where(context: Context, label: str) -> dict[str, object]:
    context.bodies += 1
    return {
        "label": label,
        "pid": os.getpid(),
        "built_in": context.built_in,
        "bodies": context.bodies,
        "released_before": context.released,
        "niceness": os.getpriority(os.PRIO_PROCESS, 0),
    }


def defer_then(context: Context, fail: bool) -> str:
    context.queue.submit(Job("deliver", {"delivery_id": 1}))
    context.queue.submit(Job("deliver", {"delivery_id": 2}))
    if fail:
        raise LookupError("after deferring")
    return "deferred"


class Unpicklable(Exception):
    def __init__(self, handle: object) -> None:
        super().__init__("holds a lock")
        self.handle = handle


def fail_unpicklably(context: Context) -> None:
    import threading

    raise Unpicklable(threading.Lock())


def ask_active(context: Context) -> bool:
    return context.queue.active("deliver")


def die(context: Context) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


_PARTNER = threading.Event()


def wait_for_partner(context: Context) -> bool:
    """True once ``set_partner`` ran in this process while this body was still running."""
    return _PARTNER.wait(30)


def set_partner(context: Context) -> str:
    _PARTNER.set()
    return "set"


def exit_the_body(context: Context) -> None:
    raise SystemExit(3)


def unpicklable_result(context: Context) -> object:
    return threading.Lock()
