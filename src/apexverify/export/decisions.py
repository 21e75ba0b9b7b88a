"""The one table from a verdict to a *decision*: what a list cleaner does with the row.

``deliverable`` (send), ``risky`` (send with care: catch-all, role, disposable, mailbox full),
``undeliverable`` (remove) and ``unknown`` (no conclusion; retry later or decide yourself).
A row with no result at all (a blank cell of an uploaded spreadsheet) has no decision.

The table is data (:data:`EMAIL_DECISIONS`, :data:`PHONE_DECISIONS`) so the Python mapping
(:func:`decision`), the SQL filters of the results table (``batches/repository``) and the
documentation (``docs/export.md``) all read the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

Decision = Literal["deliverable", "risky", "undeliverable", "unknown"]
DECISIONS: Final[tuple[Decision, ...]] = ("deliverable", "risky", "undeliverable", "unknown")

# (verdict, quality) -> decision for emails; quality None matches any quality.
# Order matters: the first matching row wins.
EMAIL_DECISIONS: Final[tuple[tuple[str, str | None, Decision], ...]] = (
    ("valid", "good", "deliverable"),
    ("valid", None, "risky"),  # valid but risky quality (role account)
    ("wrong", None, "undeliverable"),
    ("unknown", "risky", "risky"),  # catch-all, disposable, mailbox full
    ("unknown", None, "unknown"),
)
# verdict -> decision for phones (a phone result has no quality).
PHONE_DECISIONS: Final[tuple[tuple[str, str | None, Decision], ...]] = (
    ("valid", None, "deliverable"),
    ("wrong", None, "undeliverable"),
    ("unknown", None, "unknown"),
)


def table(record_type: str) -> tuple[tuple[str, str | None, Decision], ...]:
    if record_type == "email":
        return EMAIL_DECISIONS
    if record_type == "phone":
        return PHONE_DECISIONS
    raise ValueError(f"unknown record type {record_type!r}")


def verdict_of(result: Mapping[str, Any]) -> str:
    """The verdict a stored result states through its three booleans."""
    if result.get("valid"):
        return "valid"
    if result.get("wrong"):
        return "wrong"
    return "unknown"


def decision(record_type: str, result: Mapping[str, Any] | None) -> Decision | None:
    """The decision for one stored result (``EmailResult.to_dict()`` / ``PhoneResult``), or
    None when there is no result."""
    if not result:
        return None
    verdict, quality = verdict_of(result), result.get("quality")
    for row_verdict, row_quality, outcome in table(record_type):
        if row_verdict == verdict and (row_quality is None or row_quality == quality):
            return outcome
    return "unknown"


def parse_keep(text: str | Iterable[str] | None) -> frozenset[Decision] | None:
    """A ``keep`` filter (``"deliverable,risky"`` or a list) as a set; None or empty keeps
    everything. An unknown name is a ValueError whose message lists the allowed ones."""
    if text is None:
        return None
    names = text.split(",") if isinstance(text, str) else list(text)
    wanted = {name.strip().lower() for name in names if name.strip()}
    unknown = sorted(wanted - set(DECISIONS))
    if unknown:
        raise ValueError(
            f"unknown decision {', '.join(unknown)}; use one or more of {', '.join(DECISIONS)}"
        )
    return frozenset(wanted) or None  # type: ignore[arg-type]
