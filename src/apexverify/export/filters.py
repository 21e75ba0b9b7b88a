"""Which result rows a filtered view or download keeps: one filter for the dashboard's
results table (translated to SQL in ``batches/repository``) and for the exports (applied
row by row while streaming, see :meth:`ResultFilter.matches`).

Every given criterion must hold (AND); inside one criterion any listed value may match (OR).
An empty filter keeps every row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .decisions import Decision, decision, verdict_of

FLAGS = {
    "email": ("is_syntax_error", "is_free", "is_role", "is_disposable", "is_catch_all"),
    "phone": ("is_syntax_error", "is_ported"),
}


@dataclass(frozen=True)
class ResultFilter:
    decisions: frozenset[Decision] | None = None
    verdicts: frozenset[str] | None = None  # valid | wrong | unknown
    qualities: frozenset[str] | None = None  # emails only: good | risky | bad | unknown
    flags: frozenset[str] | None = None  # every named flag must be true
    search: str | None = None  # case-insensitive substring of the uploaded value

    @property
    def empty(self) -> bool:
        return not (self.decisions or self.verdicts or self.qualities or self.flags or self.search)

    def matches(self, record_type: str, value: str, result: Mapping[str, Any] | None) -> bool:
        if self.empty:
            return True
        if self.search and self.search.casefold() not in value.casefold():
            return False
        if not result:  # no result: only a pure search can keep it
            return not (self.decisions or self.verdicts or self.qualities or self.flags)
        if self.decisions and decision(record_type, result) not in self.decisions:
            return False
        if self.verdicts and verdict_of(result) not in self.verdicts:
            return False
        if self.qualities and result.get("quality") not in self.qualities:
            return False
        return not self.flags or all(result.get(flag) is True for flag in self.flags)
