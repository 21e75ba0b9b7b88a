"""How a raw value becomes the canonical form that engines verify and caches are keyed by:
the one rule for the batch parse and ``POST /v1/unit``."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from ..verify.email.syntax import normalize_email
from ..verify.phone.numbering import normalize_phone


def normalizer(record_type: str, target_country: str) -> Callable[[str], str | None]:
    """The canonical form of a trimmed value, or None when it is not a valid email address
    (or a phone number possible in ``target_country``)."""
    if record_type == "email":
        return normalize_email
    return partial(normalize_phone, region=target_country)
