"""Phone engine: offline numbering analysis plus optional live lookups (hlrlookup, Twilio).

Public API: :class:`PhoneVerifier` (the batch engine), :func:`verify_phones` (library entry),
:func:`analyze` / :func:`analyze_many` (offline analysis, one number or many on every core),
:func:`normalize_phone` (E.164 at parse time).
"""

from __future__ import annotations

from .analysis import PhoneAnalysis, analyze, offline_result
from .numbering import normalize_phone
from .parallel import analyze_many, iter_analyze

__all__ = [
    "PhoneAnalysis",
    "PhoneVerifier",
    "analyze",
    "analyze_many",
    "iter_analyze",
    "normalize_phone",
    "offline_result",
    "verify_phones",
]


def __getattr__(name: str) -> object:
    # The engine pulls in httpx; the batch parser only needs normalize_phone, so the engine
    # is imported on first use rather than with the package.
    if name in ("PhoneVerifier", "verify_phones"):
        from . import engine

        return getattr(engine, name)
    raise AttributeError(name)
