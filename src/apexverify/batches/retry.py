"""The one retry policy of background work, in both runners: a job that fails for a reason
that may pass (a database blip, a resolver or mail host timing out) is deferred again with
exponential backoff; after ``max_attempts`` the batch ends in ``internal_error`` (refunded)
instead of retrying forever. A failure that cannot pass (``EngineUnavailable``: credentials
refused) ends it at once."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError, OperationalError

from ..jobs.process_host import HostLost
from ..verify.base import EngineUnavailable


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_seconds: float = 2.0
    cap_seconds: float = 60.0

    def delay(self, attempt: int) -> float:
        """Seconds before attempt ``attempt + 1``."""
        return min(self.base_seconds**attempt, self.cap_seconds)

    def next_run_at(self, attempt: int) -> float | None:
        """When to try again after failed attempt ``attempt``; None when it gives up."""
        if attempt >= self.max_attempts:
            return None
        return time.time() + self.delay(attempt)


def parse_failure_may_pass(exc: BaseException) -> bool:
    """A parse fails for good on its input; only the database can blip, or the process
    running the parse die (a restart of the server would redo it too)."""
    return isinstance(exc, OperationalError | HostLost) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def verify_failure_may_pass(exc: BaseException) -> bool:
    return not isinstance(exc, EngineUnavailable)
