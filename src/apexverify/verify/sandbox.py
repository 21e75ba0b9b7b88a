"""Sandbox engine: deterministic verdicts from documented magic values, no network.

Accounts created with ``--sandbox`` use it; ``docs/sandbox.md`` lists every magic value.
Email: the local part (before any ``+tag``) decides. Phone: the last digit of the E.164 number.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from .base import (
    EmailResult,
    Outcome,
    PhoneResult,
    RecordType,
    Verifier,
    VerifyContext,
    VerifyItem,
)

# A big sandbox batch is cut into about this many chunks (see batch_chunk_size): measured
# with bench/lifecycle.py, 500-row chunks spent more time committing than verifying.
BATCH_CHUNKS = 100
MAX_CHUNK_ROWS = 20_000

K = TypeVar("K", bound=Hashable)

_FREE_DOMAINS = frozenset({"gmail.com", "yahoo.com", "outlook.com", "hotmail.com"})


def _email(kind: str, free: bool) -> EmailResult:
    if kind == "invalid":
        return EmailResult(False, True, False, "bad", "invalid", is_free=free)
    if kind == "unknown":
        return EmailResult(False, False, True, "unknown", "unknown", is_free=free)
    if kind == "catchall":
        return EmailResult(False, False, True, "risky", "ok", is_free=free, is_catch_all=True)
    if kind == "disposable":
        return EmailResult(False, False, True, "risky", "ok", is_disposable=True)
    if kind == "role":
        return EmailResult(True, False, False, "risky", "ok", is_free=free, is_role=True)
    if kind == "error":
        return EmailResult(False, False, True, "unknown", "error", is_free=free)
    return EmailResult(True, False, False, "good", "ok", is_free=free)


_EMAIL_MAGIC = ("valid", "invalid", "unknown", "catchall", "disposable", "role", "error")

# Last digit of the E.164 number -> (verdict, type, status, ported)
_PHONE_MAGIC: dict[str, tuple[str, str, str, bool]] = {
    "0": ("valid", "mobile", "live", False),
    "1": ("valid", "mobile", "live", True),
    "2": ("wrong", "mobile", "dead", False),
    "3": ("unknown", "mobile", "absent_subscriber", False),
    "4": ("valid", "landline", "not_applicable", False),
    "5": ("unknown", "mobile", "inconclusive", False),
    "6": ("valid", "voip", "not_applicable", False),
    "7": ("wrong", "mobile", "no_teleservice_provisioned", False),
    "8": ("unknown", "mobile", "no_coverage", False),
    "9": ("valid", "mobile_or_landline", "not_applicable", False),
}


def sandbox_email(value: str) -> EmailResult:
    local, _, domain = value.rpartition("@")
    kind = local.split("+", 1)[0].lower()
    return _email(kind if kind in _EMAIL_MAGIC else "valid", domain.lower() in _FREE_DOMAINS)


def sandbox_phone(value: str) -> PhoneResult:
    verdict, kind, status, ported = _PHONE_MAGIC.get(value[-1:], _PHONE_MAGIC["5"])
    live = status == "live"
    return PhoneResult(
        valid=verdict == "valid",
        wrong=verdict == "wrong",
        unknown=verdict == "unknown",
        type=kind,
        status=status,
        is_ported=ported,
        current_network_mcc="001" if live else None,
        current_network_mnc="01" if live else None,
        operator="Sandbox Mobile" if live else None,
        extra={"sandbox": True},
    )


class SandboxVerifier(Verifier):
    """Deterministic engine; ``latency_ms`` simulates work per call (progress demos, tests)."""

    def __init__(self, record_type: RecordType, latency_ms: int = 0) -> None:
        self.record_type = record_type
        self._latency = latency_ms / 1000

    def batch_chunk_size(self, default: int, due: int) -> int:
        """How many rows one chunk of a batch with ``due`` rows to verify should hold. Without
        a simulated latency a verdict costs a few microseconds, so a chunk's fixed costs
        (its transactions, the commit writing the cache index's pages) would dominate: a big
        batch is cut into about :data:`BATCH_CHUNKS` chunks (at most
        :data:`MAX_CHUNK_ROWS` rows each), never smaller than ``default``, so a small batch
        keeps the configured chunks (progress and cancel tests step through them)."""
        if self._latency:
            return default  # simulated work per call: the configured chunks, as configured
        return max(default, min(-(-due // BATCH_CHUNKS), MAX_CHUNK_ROWS))

    @property
    def simulates_latency(self) -> bool:
        return bool(self._latency)

    async def verify_many(
        self, items: Sequence[VerifyItem], context: VerifyContext
    ) -> list[Outcome]:
        if self._latency:
            await asyncio.sleep(self._latency)
        return self.decide([item.value for item in items])

    def decide(self, values: Sequence[str]) -> list[Outcome]:
        """The verdicts of a whole chunk of normalized values, at once (no latency, no
        attempt: the sandbox never retries). One result object per distinct verdict in the
        chunk (at most 14 for emails, 10 for phones), shared by every value that gets it: a
        batch's writer encodes each distinct result once, so the sandbox costs little more
        than reading the local part or the last digit. Callers must not mutate them."""
        if self.record_type == "phone":
            return _shared(values, _phone_key, lambda value, _key: sandbox_phone(value))
        return _shared(values, _email_key, lambda _value, key: _email(*key))


def _phone_key(value: str) -> str:
    return value[-1:]  # the last digit decides (sandbox_phone)


def _email_key(value: str) -> tuple[str, bool]:
    """What decides a sandbox email: the magic kind of the local part, and a free domain."""
    local, _, domain = value.rpartition("@")
    kind = local.split("+", 1)[0].lower()
    return (kind if kind in _EMAIL_MAGIC else "valid", domain.lower() in _FREE_DOMAINS)


def _shared(
    values: Sequence[str],
    key_of: Callable[[str], K],
    build: Callable[[str, K], Outcome],
) -> list[Outcome]:
    """``build(value, key)`` once per distinct ``key_of(value)``, shared by the values."""
    made: dict[K, Outcome] = {}
    outcomes: list[Outcome] = []
    for value in values:
        key = key_of(value)
        outcome = made.get(key)
        if outcome is None:
            outcome = made[key] = build(value, key)
        outcomes.append(outcome)
    return outcomes
