"""The XLSX Summary sheet: the batch, its parameters (codes named), the parsing summary, the
costs, the verification stats and the figures of the dashboard's charts, each with a human
label (``Valid (%)``, not ``total_verification_valid_perc``).

Pairs ``(label, value)``, written as two columns. A section starts with a pair whose value is
None (its heading) after a blank pair. The first pair stays ``("Batch", name)``: the workbook
writer makes it the sheet's first row.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy.orm import Session

from ..credits import from_milli
from ..export.decisions import DECISIONS, decision
from ..store.models import Batch, iso
from .codes import AUDIENCES, INDUSTRIES, OBJECTIVES, label
from .repository import records

Pair = tuple[str, Any]

# The stats keys of a finished batch (``verification._stats``), in the sheet's order.
STAT_LABELS: Final[dict[str, str]] = {
    "total_verification": "Verified (first occurrences)",
    "total_verification_valid": "Valid",
    "total_verification_valid_perc": "Valid (%)",
    "total_verification_wrong": "Wrong",
    "total_verification_wrong_perc": "Wrong (%)",
    "total_verification_unknown": "Unknown",
    "total_verification_unknown_perc": "Unknown (%)",
    "total_verification_duplicate": "Duplicates",
    "total_verification_account_cache": "From the account cache",
    "total_verification_account_cache_perc": "From the account cache (%)",
    "total_verification_global_cache": "From the global cache",
    "total_verification_global_cache_perc": "From the global cache (%)",
    "total_verification_cancelled": "Ended by cancel (unknown)",
    "total_verification_stalled": "Ended at the stall deadline (unknown)",
}
DECISION_LABELS: Final[dict[str, str]] = {
    "deliverable": "Deliverable",
    "risky": "Risky",
    "undeliverable": "Undeliverable",
    "unknown": "Unknown",
}
# The dashboard's second chart: email quality, phone line type.
BREAKDOWN: Final[dict[str, tuple[str, str]]] = {
    "email": ("quality", "Quality"),
    "phone": ("type", "Line type"),
}


def stat_label(key: str) -> str:
    """A stats key as a label: the known ones by :data:`STAT_LABELS`, another one spelt out
    (``total_verification_foo_perc`` -> ``Foo (%)``), so a new stat is never a raw key."""
    if key in STAT_LABELS:
        return STAT_LABELS[key]
    name = key.removeprefix("total_verification_")
    perc = name.endswith("_perc")
    name = name.removesuffix("_perc").replace("_", " ").strip().capitalize() or key
    return f"{name} (%)" if perc else name


def _section(title: str) -> list[Pair]:
    return [("", None), (title, None)]


def _parameters(batch: Batch) -> list[Pair]:
    p, t = batch.parameters or {}, batch.record_type
    return [
        *_section("Parameters"),
        ("Target country", batch.target_country),
        ("Target audience", label(AUDIENCES, p.get("target_audience"))),
        ("Target industry", label(INDUSTRIES, p.get("target_market_industry"))),
        ("Target objective", label(OBJECTIVES, p.get("target_objective"))),
        ("Remove duplicates", p.get("remove_duplicate")),
        (f"Remove wrong {t} format", p.get(f"remove_wrong_{t}_format")),
        ("Use the account cache", p.get("use_account_cache")),
        ("Account cache: max age (days)", p.get("max_account_cache_backoff")),
        ("Use the global cache", p.get("use_global_cache")),
        ("Global cache: max age (days)", p.get("max_global_cache_backoff")),
    ]


def _parsing_and_costs(batch: Batch) -> list[Pair]:
    noun = "emails" if batch.record_type == "email" else "phone numbers"
    return [
        *_section("Parsing"),
        (f"Accepted {noun} (valid format)", batch.valid_count),
        (f"Wrong-format {noun}", batch.wrong_count),
        ("Duplicates", batch.duplicate_count),
        *_section("Costs (credits)"),
        ("Total cost", round(from_milli(batch.total_cost_milli))),
        ("Net cost (after cache returns)", from_milli(batch.net_cost_milli)),
        ("Charged", from_milli(batch.charged_milli)),
        ("Refunded", from_milli(batch.refunded_milli)),
        ("Account cache returns", batch.cache_account_count),
        ("Global cache returns", batch.cache_global_count),
    ]


def _stats(batch: Batch) -> list[Pair]:
    stats = dict(batch.stats or {})
    ordered = [key for key in STAT_LABELS if key in stats] + [
        key for key in stats if key not in STAT_LABELS
    ]
    return [*_section("Verification"), *((stat_label(key), stats[key]) for key in ordered)]


def _charts(session: Session, batch: Batch) -> list[Pair]:
    """Counts by decision and by quality (email) or line type (phone), over the rows the
    stats count (valid-format first occurrences with a verdict), from one grouped scan."""
    field, title = BREAKDOWN[batch.record_type]
    by_decision = dict.fromkeys(DECISIONS, 0)
    breakdown: dict[str, int] = {}
    for verdict, value, count in records.verdict_field_counts(session, batch.pk, field):
        # a phone's decision reads only the verdict; an email's the verdict and quality
        result = {verdict or "unknown": True, field: value}
        by_decision[decision(batch.record_type, result) or "unknown"] += count
        name = value or "none"
        breakdown[name] = breakdown.get(name, 0) + count
    return [
        *_section("By decision"),
        *((DECISION_LABELS[name], by_decision[name]) for name in DECISIONS),
        *_section(f"By {title.lower()}"),
        *((name, breakdown[name]) for name in sorted(breakdown)),
    ]


def summary_rows(session: Session, batch: Batch) -> list[Pair]:
    rows: list[Pair] = [
        ("Batch", batch.name),
        ("Batch UUID", batch.uuid),
        ("Description", batch.description),
        ("Type", batch.record_type),
        ("Created at", iso(batch.created_at)),
        ("Launched at", iso(batch.launched_at)),
        ("Finished at", iso(batch.finished_at)),
    ]
    if batch.cancelled_at is not None:
        rows.append(("Cancelled at", iso(batch.cancelled_at)))
    return (
        rows
        + _parameters(batch)
        + _parsing_and_costs(batch)
        + _stats(batch)
        + _charts(session, batch)
    )
