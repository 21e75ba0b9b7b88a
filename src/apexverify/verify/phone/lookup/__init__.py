"""Live lookup providers behind one :class:`NetworkLookup` interface, chosen by settings."""

from __future__ import annotations

from typing import get_args

from ....errors import ConfigurationError
from ....settings import PhoneLookupProvider, Settings
from .base import LookupFailure, LookupOutcome, LookupResult, NetworkLookup
from .http import RetryPolicy

PROVIDERS: tuple[PhoneLookupProvider, ...] = get_args(PhoneLookupProvider)


def build_lookup(settings: Settings, policy: RetryPolicy | None = None) -> NetworkLookup | None:
    """The provider ``settings.phone_lookup_provider`` names, or ``None`` for offline only.

    Raises :class:`ConfigurationError` naming the setting when the provider's credentials
    are missing.
    """
    provider = settings.phone_lookup_provider
    if provider == "none":
        return None
    if provider == "hlrlookup":
        from .hlrlookup import HlrLookupProvider

        return HlrLookupProvider.from_settings(settings, policy)
    if provider == "twilio":
        from .twilio import TwilioLookupProvider

        return TwilioLookupProvider.from_settings(settings, policy)
    # Unreachable for a validated Settings; kept for one built with model_construct().
    raise ConfigurationError(
        "APEXVERIFY_PHONE_LOOKUP_PROVIDER", f"must be one of {', '.join(PROVIDERS)}"
    )


__all__ = [
    "PROVIDERS",
    "LookupFailure",
    "LookupOutcome",
    "LookupResult",
    "NetworkLookup",
    "RetryPolicy",
    "build_lookup",
]
