"""Cost of a batch; every field is documented in ``docs/costs.md``.

    total = valid rows x price per record
    net   = total - refund_rate x price x (account cache hits + global cache hits)

All figures are integer milli-credits so that debits and refunds are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..credits import to_milli
from ..settings import Settings
from ..store.records import Counts


@dataclass(frozen=True)
class Price:
    total_milli: int
    net_milli: int


def price_batch(settings: Settings, record_type: str, counts: Counts) -> Price:
    unit = to_milli(settings.price_for(record_type))
    total = counts.valid * unit
    cache_refund = round(
        settings.cache_refund_rate * unit * (counts.cache_account + counts.cache_global)
    )
    return Price(total_milli=total, net_milli=max(total - cache_refund, 0))


def unknown_refund_milli(settings: Settings, record_type: str, fresh_unknown: int) -> int:
    """Refund for records whose verification stayed inconclusive (when the policy is on)."""
    if not settings.refund_unknown:
        return 0
    return fresh_unknown * to_milli(settings.price_for(record_type))
