"""Money and cache rules, one copy for batches and ``POST /v1/unit``: prices, the cache-hit
return, the refund of inconclusive results, and which caches a request reads and feeds.
Every figure is documented in ``docs/costs.md``.

    total = valid rows x price per record
    net   = total - refund_rate x price x (account cache hits + global cache hits)

All figures are integer milli-credits so that debits and refunds are exact. Sandbox accounts
are never charged, and neither read nor feed the global cache: their verdicts are fabricated.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..credits import to_milli
from ..settings import Settings
from ..store.models import Account
from .params import Targeting
from .repository.caches import GLOBAL_SCOPE


@dataclass
class Counts:
    """The parse figures of a batch."""

    valid: int = 0
    wrong: int = 0
    duplicate: int = 0
    cache_account: int = 0
    cache_global: int = 0


@dataclass(frozen=True)
class Price:
    total_milli: int
    net_milli: int


def unit_price_milli(settings: Settings, record_type: str, account: Account) -> int:
    """What one verified record costs this account."""
    return 0 if account.sandbox else to_milli(settings.price_for(record_type))


def cache_return_milli(settings: Settings, record_type: str, hits: int) -> int:
    """What ``hits`` cache hits give back of the price."""
    unit = to_milli(settings.price_for(record_type))
    return round(settings.cache_refund_rate * unit * hits)


def cache_hit_price_milli(settings: Settings, record_type: str, account: Account) -> int:
    """One value answered from a cache (``POST /v1/unit``)."""
    if account.sandbox:
        return 0
    return to_milli(settings.price_for(record_type)) - cache_return_milli(settings, record_type, 1)


def price_batch(settings: Settings, record_type: str, counts: Counts) -> Price:
    total = counts.valid * to_milli(settings.price_for(record_type))
    hits = counts.cache_account + counts.cache_global
    return Price(total, max(total - cache_return_milli(settings, record_type, hits), 0))


def launch_cost_milli(account: Account, net_milli: int) -> int:
    return 0 if account.sandbox else net_milli


def unknown_refund_milli(settings: Settings, record_type: str, fresh_unknown: int) -> int:
    """Refund for records whose verification stayed inconclusive (when the policy is on)."""
    if not settings.refund_unknown:
        return 0
    return fresh_unknown * to_milli(settings.price_for(record_type))


def unverified_refund_milli(settings: Settings, record_type: str, unverified: int) -> int:
    """Refund for records a failed verification never reached: always, whatever the policy."""
    return unverified * to_milli(settings.price_for(record_type))


@dataclass(frozen=True)
class CacheScope:
    scope: str  # the account id, or GLOBAL_SCOPE
    max_age_days: int
    source: str  # "account" | "global": how a hit is labelled on the record


@dataclass(frozen=True)
class CachePolicy:
    reads: tuple[CacheScope, ...]  # in the order they are tried
    writes: tuple[str, ...]  # scopes conclusive verdicts are stored in


def cache_policy(account: Account, params: Targeting) -> CachePolicy:
    """Which caches a batch or a unit call reads, and which its conclusive verdicts feed.
    The account's own cache is always fed; the global one only by real accounts that opted
    in."""
    reads: list[CacheScope] = []
    if params.use_account_cache:
        reads.append(CacheScope(account.id, params.max_account_cache_backoff, "account"))
    uses_global = params.use_global_cache and not account.sandbox
    if uses_global:
        reads.append(CacheScope(GLOBAL_SCOPE, params.max_global_cache_backoff, "global"))
    writes = (account.id, GLOBAL_SCOPE) if uses_global else (account.id,)
    return CachePolicy(tuple(reads), writes)
