"""SQL over ``result_cache``: the account caches and the global cache (scope '')."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ...store.db import affected
from ...store.models import CachedResult, Record
from .predicates import unverified

GLOBAL_SCOPE = ""  # account_id of global-cache rows

CacheEntry = tuple[bytes, str, dict[str, Any]]  # (key_hash, verdict, result)


def _since(max_age_days: int) -> int:
    return int(time.time()) - max_age_days * 86400


def lookup(
    session: Session, scopes: Sequence[tuple[str, int]], record_type: str, key: bytes
) -> dict[str, Any] | None:
    """The first fresh result for ``key`` among ``(scope, max_age_days)``, in that order."""
    for scope, days in scopes:
        result = session.scalar(
            select(CachedResult.result).where(
                CachedResult.account_id == scope,
                CachedResult.record_type == record_type,
                CachedResult.key_hash == key,
                CachedResult.verified_at >= _since(days),
            )
        )
        if result is not None:
            return dict(result)
    return None


def apply(
    session: Session, batch_pk: int, record_type: str, scope: str, max_age_days: int, source: str
) -> int:
    """Copy fresh cached results onto the batch's unverified rows; returns how many."""
    stmt = (
        update(Record)
        .where(
            unverified(batch_pk),
            CachedResult.account_id == scope,
            CachedResult.record_type == record_type,
            CachedResult.key_hash == Record.key_hash,
            CachedResult.verified_at >= _since(max_age_days),
        )
        .values(cache_source=source, verdict=CachedResult.verdict, result=CachedResult.result)
        .execution_options(synchronize_session=False)
    )
    return affected(session, stmt)


def _upsert_statement(insert: Any) -> Any:
    stmt = insert(CachedResult.__table__)
    return stmt.on_conflict_do_update(
        index_elements=["account_id", "record_type", "key_hash"],
        set_={
            "verdict": stmt.excluded.verdict,
            "result": stmt.excluded.result,
            "verified_at": stmt.excluded.verified_at,
        },
    )


_UPSERT = {
    "postgresql": _upsert_statement(postgresql.insert),
    "sqlite": _upsert_statement(sqlite.insert),
}


def upsert(session: Session, scope: str, record_type: str, entries: Sequence[CacheEntry]) -> None:
    """Store conclusive results in one cache scope (newest wins)."""
    if not entries:
        return
    now = int(time.time())
    values = [
        {
            "account_id": scope,
            "record_type": record_type,
            "key_hash": key,
            "verdict": verdict,
            "result": result,
            "verified_at": now,
        }
        for key, verdict, result in entries
    ]
    conn = session.connection()
    # One statement with a parameter list (an executemany): compiled once and cached, where a
    # multi-row VALUES would be compiled anew for every chunk.
    conn.execute(_UPSERT[conn.dialect.name], values)
