"""``POST /v1/unit``: one value verified in real time through the same engines and caches.

Charging: the per-record price is debited before verifying (never below zero), a cache hit
costs ``price x (1 - cache_refund_rate)``, an inconclusive result is refunded when the
policy refunds unknowns, and a syntax error is free. Sandbox accounts are never charged.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import select

from ..accounts import service as accounts
from ..credits import to_milli
from ..errors import InsufficientCredits
from ..jobs.metrics import count_smtp_reply
from ..store import records
from ..store.models import Account, CachedResult
from ..verify.base import Retry, VerifyContext, VerifyItem, syntax_error_result
from ..verify.email.syntax import normalize_email
from ..verify.phone.numbering import normalize_phone
from ..verify.registry import build_verifier
from .context import Services
from .hashing import value_key
from .params import UnitRequest


async def verify_unit(services: Services, account: Account, request: UnitRequest) -> dict[str, Any]:
    value = request.unit.strip()
    kind = request.type
    normalized = (
        normalize_email(value)
        if kind == "email"
        else normalize_phone(value, request.target_country)
    )
    if normalized is None:
        return {kind: value, **syntax_error_result(kind).to_dict()}
    key = value_key(services.secret, normalized)
    cached = await asyncio.to_thread(_cached, services, account, request, key)
    price = 0 if account.sandbox else to_milli(services.settings.price_for(kind))
    if cached is not None:
        charge = round(price * (1 - services.settings.cache_refund_rate))
        await asyncio.to_thread(_charge, services, account.id, kind, charge)
        return {kind: value, **cached}
    await asyncio.to_thread(_charge, services, account.id, kind, price)
    verifier = build_verifier(
        kind, services.settings, sandbox=account.sandbox, on_smtp_reply=count_smtp_reply
    )
    context = VerifyContext(request.target_country, services.settings.max_verify_attempts)
    try:
        # Last allowed attempt: the engine must answer now instead of asking for a retry.
        (outcome,) = await verifier.verify_many(
            [VerifyItem(normalized, context.max_attempts)], context
        )
    finally:
        await verifier.aclose()
    assert not isinstance(outcome, Retry)
    data = outcome.to_dict()
    if outcome.verdict == "unknown" and services.settings.refund_unknown and price:
        await asyncio.to_thread(_charge, services, account.id, kind, -price)
    elif outcome.verdict != "unknown":
        feeds_global = request.use_global_cache and not account.sandbox
        await asyncio.to_thread(
            _remember, services, account.id, kind, key, outcome.verdict, data, feeds_global
        )
    return {kind: value, **data}


def _cached(
    services: Services, account: Account, request: UnitRequest, key: bytes
) -> dict[str, Any] | None:
    now = int(time.time())
    scopes = []
    if request.use_account_cache:
        scopes.append((account.id, request.max_account_cache_backoff))
    if request.use_global_cache and not account.sandbox:
        scopes.append((records.GLOBAL_SCOPE, request.max_global_cache_backoff))
    with services.store.read() as session:
        for scope, days in scopes:
            result = session.scalar(
                select(CachedResult.result).where(
                    CachedResult.account_id == scope,
                    CachedResult.record_type == request.type,
                    CachedResult.key_hash == key,
                    CachedResult.verified_at >= now - days * 86400,
                )
            )
            if result is not None:
                return dict(result)
    return None


def _charge(services: Services, account_id: str, kind: str, milli: int) -> None:
    if not milli:
        return
    with services.store.write() as session:
        if not accounts.move_credits(
            session,
            account_id,
            kind,
            -milli,
            kind="unit" if milli > 0 else "unit_refund",
            note="unit verification",
        ):
            raise InsufficientCredits()


def _remember(
    services: Services,
    account_id: str,
    kind: str,
    key: bytes,
    verdict: str,
    data: dict[str, Any],
    feeds_global: bool,
) -> None:
    with services.store.write() as session:
        records.upsert_cache(session, account_id, kind, [(key, verdict, data)])
        if feeds_global:
            records.upsert_cache(session, records.GLOBAL_SCOPE, kind, [(key, verdict, data)])
