"""The phone engine: offline analysis for every number, a live lookup where one is configured.

Flow of one ``verify_many`` call:

1. every item is analysed offline (``analysis.py``); that alone decides syntax errors and
   unallocated ranges, which are never sent to a paid provider;
2. the distinct E.164 numbers the provider ``wants`` (by offline type) and that are not in
   this verifier's result cache are looked up once each, whatever the duplicates;
3. provider facts are merged under the rules below; transient provider failures become a
   :class:`Retry` until the last attempt, which falls back to the offline result with the
   ``lookup_error`` extra field set. A provider that refuses the credentials or the account
   (HTTP 401/403) makes the whole call raise :class:`EngineUnavailable` instead.

Verdict with a live lookup: ``live`` -> valid; ``dead`` or ``no_teleservice_provisioned``
(a SIM without voice/SMS service) -> wrong; every other status -> unknown. A provider that
calls the number invalid (Twilio ``valid: false``) -> wrong.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence

from ...settings import Settings
from ..base import (
    Outcome,
    PhoneResult,
    RecordType,
    Retry,
    Verifier,
    VerifyContext,
    VerifyItem,
)
from .analysis import PhoneAnalysis, analyze, base_extra, offline_result
from .lookup import LookupFailure, LookupResult, NetworkLookup, RetryPolicy, build_lookup
from .typemap import offline_status

log = logging.getLogger("apexverify.verify.phone")

# Runner-level delay after a transient failure with no Retry-After: long enough for a
# provider incident to pass, short enough that a batch does not stall for long.
RUNNER_RETRY_SECONDS = 60.0
# Successful lookups kept per verifier (one verifier per batch run), so a number repeated
# across chunks is paid for once. ~300 bytes each.
_CACHE_LIMIT = 100_000

_VALID_STATUSES = frozenset({"live"})
_WRONG_STATUSES = frozenset({"dead", "no_teleservice_provisioned"})


def merge(analysis: PhoneAnalysis, facts: LookupResult, provider: str) -> PhoneResult:
    """A final result from offline facts plus what the provider said."""
    extra = base_extra(analysis)
    if facts.error is not None:
        result = offline_result(analysis)
        result.extra["lookup_error"] = facts.error
        return result
    extra["evidence"] = provider
    extra["provider_line_type"] = facts.provider_line_type
    extra["original_operator"] = facts.original_operator
    if facts.number_valid is False:
        return PhoneResult(
            valid=False,
            wrong=True,
            unknown=False,
            type=analysis.type,
            status="not_applicable",
            extra=extra,
        )
    # A provider "unknown" type says less than the range data, so the range type stays.
    phone_type = facts.type if facts.type not in (None, "unknown") else analysis.type
    status = facts.status or offline_status(phone_type)
    operator = facts.operator or analysis.operator
    if facts.operator:
        extra["operator_source"] = provider
    return PhoneResult(
        valid=status in _VALID_STATUSES,
        wrong=status in _WRONG_STATUSES,
        unknown=status not in _VALID_STATUSES and status not in _WRONG_STATUSES,
        type=phone_type,
        status=status,
        is_ported=bool(facts.is_ported),
        current_network_mcc=facts.mcc,
        current_network_mnc=facts.mnc,
        operator=operator,
        extra=extra,
    )


def _failed(analysis: PhoneAnalysis, failure: LookupFailure) -> PhoneResult:
    result = offline_result(analysis)
    result.extra["lookup_error"] = failure.reason
    return result


class PhoneVerifier(Verifier):
    record_type: RecordType = "phone"

    def __init__(
        self,
        settings: Settings,
        *,
        lookup: NetworkLookup | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        """``lookup`` overrides the provider named by ``settings`` (tests, embedding)."""
        self._settings = settings
        self._lookup = lookup if lookup is not None else build_lookup(settings, policy)
        self._cache: dict[str, LookupResult] = {}

    def chunk_size(self, default: int) -> int:
        """Whole provider batches: ``default`` rounded down to a multiple of them."""
        batch = self._lookup.batch_size if self._lookup is not None else 1
        return max(batch, default - default % batch)

    def __repr__(self) -> str:
        provider = self._lookup.name if self._lookup else "none"
        return f"<PhoneVerifier provider={provider}>"

    async def verify_many(
        self, items: Sequence[VerifyItem], context: VerifyContext
    ) -> list[Outcome]:
        # ~30 us per number: a 500-number chunk holds the event loop for ~15 ms, less than
        # handing it to a thread would cost in copying.
        analyses = [analyze(item.value, context.target_country) for item in items]
        lookup = self._lookup
        if lookup is None:
            return [offline_result(a) for a in analyses]
        outcomes = await self._look_up(lookup, analyses)
        results: list[Outcome] = []
        for item, analysis in zip(items, analyses, strict=True):
            outcome = outcomes.get(analysis.e164) if analysis.e164 else None
            if outcome is None:
                results.append(offline_result(analysis))
            elif isinstance(outcome, LookupResult):
                results.append(merge(analysis, outcome, lookup.name))
            elif outcome.transient and item.attempt < context.max_attempts:
                delay = outcome.retry_after or RUNNER_RETRY_SECONDS
                results.append(Retry(delay, f"{lookup.name}: {outcome.reason}"))
            else:
                results.append(_failed(analysis, outcome))
        return results

    async def _look_up(
        self, lookup: NetworkLookup, analyses: Iterable[PhoneAnalysis]
    ) -> dict[str, LookupResult | LookupFailure]:
        wanted = {a.e164 for a in analyses if a.e164 and a.valid_range and lookup.wants(a.type)}
        outcomes: dict[str, LookupResult | LookupFailure] = {
            n: self._cache[n] for n in wanted if n in self._cache
        }
        missing = sorted(wanted - outcomes.keys())
        if missing:
            fetched = await lookup.lookup_many(missing)
            for number in missing:
                outcome = fetched.get(number) or LookupFailure("missing", transient=False)
                outcomes[number] = outcome
                if isinstance(outcome, LookupResult) and len(self._cache) < _CACHE_LIMIT:
                    self._cache[number] = outcome
        return outcomes

    async def aclose(self) -> None:
        self._cache.clear()
        if self._lookup is not None:
            await self._lookup.aclose()


async def verify_phones(
    numbers: Sequence[str],
    settings: Settings,
    target_country: str = "US",
    *,
    max_retry_wait: float = 60.0,
) -> list[PhoneResult]:
    """Verify numbers written in any form; final results in input order.

    Library entry point: retries the engine asks for are honoured here (waiting at most
    ``max_retry_wait`` seconds between rounds) up to ``settings.max_verify_attempts``.
    Raises :class:`EngineUnavailable` when the lookup provider refuses the credentials.
    """
    context = VerifyContext(
        target_country=target_country, max_attempts=max(1, settings.max_verify_attempts)
    )
    verifier = PhoneVerifier(settings)
    final: list[PhoneResult | None] = [None] * len(numbers)
    pending = [(i, VerifyItem(n)) for i, n in enumerate(numbers)]
    try:
        while pending:
            outcomes = await verifier.verify_many([item for _, item in pending], context)
            retry: list[tuple[int, VerifyItem]] = []
            wait = 0.0
            for (index, item), outcome in zip(pending, outcomes, strict=True):
                if isinstance(outcome, Retry):
                    retry.append((index, VerifyItem(item.value, item.attempt + 1)))
                    wait = max(wait, outcome.after_seconds)
                elif isinstance(outcome, PhoneResult):
                    final[index] = outcome
                else:  # the phone engine only makes phone results
                    raise TypeError(f"phone engine returned {type(outcome).__name__}")
            if retry:
                await asyncio.sleep(min(wait, max_retry_wait))
            pending = retry
    finally:
        await verifier.aclose()
    return [r for r in final if r is not None]
