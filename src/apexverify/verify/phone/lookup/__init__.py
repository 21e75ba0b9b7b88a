"""Live lookup providers behind one :class:`NetworkLookup` interface, chosen by settings."""

from __future__ import annotations

from ....settings import Settings
from .base import LookupFailure, LookupOutcome, LookupResult, NetworkLookup
from .http import RetryPolicy

PROVIDERS = ("none", "hlrlookup", "twilio")


def build_lookup(settings: Settings, policy: RetryPolicy | None = None) -> NetworkLookup | None:
    """The provider ``settings.phone_lookup_provider`` names, or ``None`` for offline only."""
    provider = (settings.phone_lookup_provider or "none").strip().lower()
    if provider == "none":
        return None
    if provider == "hlrlookup":
        from .hlrlookup import HlrLookupProvider

        return HlrLookupProvider.from_settings(settings, policy)
    if provider == "twilio":
        from .twilio import TwilioLookupProvider

        return TwilioLookupProvider.from_settings(settings, policy)
    raise ValueError(f"APEXVERIFY_PHONE_LOOKUP_PROVIDER must be one of {', '.join(PROVIDERS)}")


__all__ = [
    "PROVIDERS",
    "LookupFailure",
    "LookupOutcome",
    "LookupResult",
    "NetworkLookup",
    "RetryPolicy",
    "build_lookup",
]
