"""HTTP plumbing shared by the provider adapters: concurrency, timeouts, retries, 429s.

Retry policy, per request:

* timeouts, connection errors, 500/502/503/504: retry with exponential backoff
  (``backoff_base * 2**n``, jittered, capped at ``backoff_max``);
* 429 (and 503) with ``Retry-After``: wait what the provider asks if that is at most
  ``max_inline_wait`` seconds, and make every other request of this adapter wait too (one
  rate limit is shared by the whole account). A longer wait is handed back to the batch
  runner as a transient :class:`LookupFailure`, which stores the retry time durably instead
  of holding a worker asleep;
* 401/403: the provider refuses the credentials (or the account): :class:`EngineUnavailable`
  is raised, since no request of this engine can succeed until the setting is fixed;
* 402 (credit) and other 4xx: no retry, the request will not improve.

The ``httpx.AsyncClient`` is created on the first request, so building an adapter (at
start-up, :meth:`EngineFactory.check <apexverify.verify.registry.EngineFactory.check>`)
opens nothing.

Credentials never appear in log lines, exception texts or failure reasons: reasons are
built from status codes and exception class names only.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from ...base import EngineUnavailable
from .base import LookupFailure

log = logging.getLogger("apexverify.verify.phone.lookup")

_RETRY_STATUSES = frozenset({500, 502, 503, 504})

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3  # extra attempts after the first
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    max_inline_wait: float = 30.0

    def backoff(self, attempt: int) -> float:
        delay = min(self.backoff_max, self.backoff_base * 2.0**attempt)
        # Jitter spreads retries of concurrent requests so they do not hit the provider
        # again in the same instant.
        return delay * random.uniform(0.5, 1.0)


async def gather_or_cancel(coroutines: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """``asyncio.gather`` for the requests of one ``lookup_many``, except that a failure
    cancels the requests still running (one refused credential refuses them all) and is
    raised as itself, :class:`EngineUnavailable` first, rather than as an exception group."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coroutine) for coroutine in coroutines]
    except BaseExceptionGroup as failed:
        unavailable = failed.subgroup(EngineUnavailable)
        first: BaseException = unavailable or failed
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return [task.result() for task in tasks]


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HttpProvider:
    """Owns one ``httpx.AsyncClient`` and the shared limits of one provider account."""

    provider: str = "provider"

    def __init__(
        self,
        *,
        concurrency: int,
        timeout: float,
        policy: RetryPolicy,
        auth: httpx.Auth | None = None,
    ) -> None:
        self._policy = policy
        self._semaphore = asyncio.Semaphore(max(1, concurrency))
        self._paused_until = 0.0
        self._concurrency = max(1, concurrency)
        self._timeout = timeout
        self._auth = auth
        self._http: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        # The default repr would not leak secrets either, but subclasses hold them: be sure.
        return f"<{type(self).__name__}>"

    @property
    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout),
                limits=httpx.Limits(max_connections=self._concurrency),
                auth=self._auth,
                headers={"User-Agent": "ApexVerify phone engine"},
            )
        return self._http

    async def aclose(self) -> None:
        client, self._http = self._http, None
        if client is not None:
            await client.aclose()

    async def _wait_if_paused(self) -> None:
        delay = self._paused_until - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def _pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    async def send(self, build: Callable[[], httpx.Request]) -> httpx.Response | LookupFailure:
        """Send the request ``build`` makes, retrying per the policy; 2xx or a failure.

        Raises :class:`EngineUnavailable` when the provider answers 401 or 403.
        """
        policy = self._policy
        failure = LookupFailure("not_sent", transient=True)
        async with self._semaphore:
            for attempt in range(policy.retries + 1):
                await self._wait_if_paused()
                try:
                    response = await self._client.send(build())
                except httpx.TimeoutException:
                    failure = LookupFailure("timeout", transient=True)
                except httpx.TransportError as exc:
                    failure = LookupFailure(f"transport_{type(exc).__name__}", transient=True)
                else:
                    status = response.status_code
                    if status < 300:
                        return response
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    if status == 429 or (status == 503 and retry_after is not None):
                        reason = "rate_limited" if status == 429 else "http_503"
                        wait = retry_after if retry_after is not None else policy.backoff(attempt)
                        failure = LookupFailure(reason, transient=True, retry_after=wait)
                        if wait > policy.max_inline_wait:
                            log.warning("%s: %s for %.0fs, deferring", self.provider, reason, wait)
                            return failure
                        self._pause(wait)
                        log.info("%s: %s, waiting %.2fs", self.provider, reason, wait)
                        continue
                    if status in _RETRY_STATUSES:
                        failure = LookupFailure(f"http_{status}", transient=True)
                    elif status in (401, 403):
                        log.error("%s: credentials rejected (HTTP %d)", self.provider, status)
                        raise EngineUnavailable(
                            f"{self.provider}: the provider refused the credentials or the "
                            f"account (HTTP {status})"
                        )
                    elif status == 402:
                        log.error("%s: out of credit (HTTP 402)", self.provider)
                        return LookupFailure("payment", transient=False)
                    else:
                        return LookupFailure(f"http_{status}", transient=False)
                log.info("%s: attempt %d failed: %s", self.provider, attempt + 1, failure.reason)
                if attempt < policy.retries:
                    await asyncio.sleep(policy.backoff(attempt))
        return failure
