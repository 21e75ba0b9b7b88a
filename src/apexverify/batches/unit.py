"""``POST /v1/unit``: one value verified in real time through the same engines, prices and
cache rules as a batch (``policy.py``).

Money: the price is reserved (debited, never below zero) before verifying, and settled after:
an inconclusive result is refunded under the refund policy, and a verification that raises
releases the reservation, so a failure never costs anything. A cache hit costs the price less
the cache return, a syntax error is free, and sandbox accounts are never charged. Each step
is one short transaction: no transaction stays open while the engine talks to the network.

Time: the engine gets ``unit_timeout_seconds`` (live form validation wants an answer in
seconds). What a batch would retry later (greylisting, an unhealthy network) or what is still
undecided at the deadline answers ``unknown`` with a ``reason`` and a ``retry_after`` hint in
whole seconds, refunded in full and never cached.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from ..accounts import service as accounts
from ..errors import InsufficientCredits
from ..store.models import Account
from ..verify.base import (
    Outcome,
    RecordType,
    Retry,
    VerifyContext,
    VerifyItem,
    inconclusive_result,
    syntax_error_result,
)
from . import policy
from .context import Services
from .hashing import value_key
from .params import UnitRequest
from .repository import caches
from .values import normalizer


async def verify_unit(services: Services, account: Account, request: UnitRequest) -> dict[str, Any]:
    value = request.unit.strip()
    kind = request.type
    normalized = normalizer(kind, request.target_country)(value)
    if normalized is None:
        return {kind: value, **syntax_error_result(kind).to_dict()}
    key = value_key(services.secret, normalized)
    rules = policy.cache_policy(account, request)
    cached = await asyncio.to_thread(_cached, services, rules, kind, key)
    if cached is not None:
        hit_price = policy.cache_hit_price_milli(services.settings, kind, account)
        await asyncio.to_thread(_move, services, account.id, kind, -hit_price, "unit")
        return {kind: value, **cached}
    price = policy.unit_price_milli(services.settings, kind, account)
    await asyncio.to_thread(_move, services, account.id, kind, -price, "unit")
    try:
        outcome = await _verify(services, account, request, normalized)
    except BaseException:
        await asyncio.shield(
            asyncio.to_thread(_move, services, account.id, kind, price, "unit_release")
        )
        raise
    if isinstance(outcome, Retry):
        # No conclusive answer within the budget: never charged, never cached.
        await asyncio.to_thread(_move, services, account.id, kind, price, "unit_refund")
        return {kind: value, **_inconclusive(kind, outcome)}
    data = outcome.to_dict()
    if outcome.verdict == "unknown":
        if services.settings.refund_unknown:
            await asyncio.to_thread(_move, services, account.id, kind, price, "unit_refund")
    else:
        await asyncio.to_thread(_remember, services, rules, kind, key, outcome.verdict, data)
    return {kind: value, **data}


async def _verify(
    services: Services, account: Account, request: UnitRequest, normalized: str
) -> Outcome:
    """The engine's outcome within ``unit_timeout_seconds``; a :class:`Retry` when the
    engine asked to retry later (greylisting, an unhealthy network) or ran out of time."""
    verifier = services.engines.build(request.type, sandbox=account.sandbox)
    context = VerifyContext(request.target_country, services.settings.max_verify_attempts)
    budget = services.settings.unit_timeout_seconds
    try:
        async with asyncio.timeout(budget):
            # A first attempt: what a batch would retry later, the caller is told to retry.
            (outcome,) = await verifier.verify_many([VerifyItem(normalized)], context)
    except TimeoutError:
        return Retry(
            after_seconds=services.settings.smtp_greylist_retry_seconds,
            reason=f"timeout: no conclusive answer within the {budget:g} s budget",
        )
    return outcome


def _inconclusive(kind: RecordType, retry: Retry) -> dict[str, Any]:
    # Engine retry reasons read "<evidence>: <detail>" (verdicts.decide).
    head = retry.reason.partition(":")[0].strip()
    evidence = head if head.isidentifier() else "inconclusive"
    data = inconclusive_result(kind, evidence, retry.reason).to_dict()
    # Whole seconds, at least 1: when trying again can give a conclusive answer.
    data["retry_after"] = max(1, math.ceil(retry.after_seconds))
    return data


def _cached(
    services: Services, rules: policy.CachePolicy, kind: str, key: bytes
) -> dict[str, Any] | None:
    scopes = [(read.scope, read.max_age_days) for read in rules.reads]
    with services.store.read() as session:
        return caches.lookup(session, scopes, kind, key)


def _move(services: Services, account_id: str, kind: str, milli: int, ledger_kind: str) -> None:
    if not milli:
        return
    with services.store.write() as session:
        if not accounts.move_credits(
            session, account_id, kind, milli, kind=ledger_kind, note="unit verification"
        ):
            raise InsufficientCredits()


def _remember(
    services: Services,
    rules: policy.CachePolicy,
    kind: str,
    key: bytes,
    verdict: str,
    data: dict[str, Any],
) -> None:
    with services.store.write() as session:
        for scope in rules.writes:
            caches.upsert(session, scope, kind, [(key, verdict, data)])
