"""Phone engine: offline numbering analysis plus optional live lookups (hlrlookup, Twilio).

Public API: :class:`PhoneVerifier` (the batch engine), :func:`verify_phones` (library entry),
:func:`analyze` (offline analysis of one number), :func:`normalize_phone` (E.164 at parse
time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .analysis import PhoneAnalysis, analyze, offline_result
from .numbering import normalize_phone

if TYPE_CHECKING:  # imported lazily at run time, see __getattr__
    from .engine import PhoneVerifier, verify_phones

__all__ = [
    "PhoneAnalysis",
    "PhoneVerifier",
    "analyze",
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
