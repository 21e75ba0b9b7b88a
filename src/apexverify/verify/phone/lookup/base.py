"""The ``NetworkLookup`` interface every live-lookup provider adapter implements.

An adapter turns E.164 numbers into provider facts (:class:`LookupResult`) or says why it
could not (:class:`LookupFailure`). It owns batching, concurrency limits, timeouts and
retries for its provider; the engine owns the honesty rules that turn facts into verdicts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from ....errors import ConfigurationError


@dataclass(frozen=True)
class LookupResult:
    """What a provider said about one number. ``None`` means "the provider did not say"."""

    status: str | None = None  # guide PHONE_STATUSES value; None when the provider has none
    type: str | None = None  # guide PHONE_TYPES value
    provider_line_type: str | None = None  # the provider's own type label, verbatim
    is_ported: bool | None = None
    mcc: str | None = None  # current network
    mnc: str | None = None
    operator: str | None = None  # current network name
    original_operator: str | None = None
    number_valid: bool | None = None  # the provider's own validity verdict, if it gives one
    error: str | None = None  # per-number provider error; other fields are then unreliable


@dataclass(frozen=True)
class LookupFailure:
    """The provider could not be asked (transport, HTTP, rate limit) for this number.

    ``transient`` failures are worth retrying later; ``retry_after`` is the provider's own
    hint (Retry-After) when it gave one.
    """

    reason: str
    transient: bool
    retry_after: float | None = None


LookupOutcome = LookupResult | LookupFailure


class NetworkLookup(ABC):
    """A paid live-lookup provider."""

    name: ClassVar[str]
    # Numbers per provider request when the provider takes several at once.
    batch_size: int = 1

    @abstractmethod
    def wants(self, phone_type: str) -> bool:
        """Whether a number of this offline type is worth paying this provider for."""

    @abstractmethod
    async def lookup_many(self, numbers: Sequence[str]) -> dict[str, LookupOutcome]:
        """Look up distinct E.164 numbers; every input number gets an outcome."""

    async def aclose(self) -> None:  # noqa: B027 - adapters without connections need nothing
        """Close HTTP connections."""


def require_settings(provider: str, required: dict[str, str], needs: str) -> None:
    """Raise ``ConfigurationError`` for the first empty setting a provider needs."""
    for setting, value in required.items():
        if not value:
            raise ConfigurationError(
                setting,
                f"must be set when APEXVERIFY_PHONE_LOOKUP_PROVIDER={provider} (it needs {needs})",
            )
