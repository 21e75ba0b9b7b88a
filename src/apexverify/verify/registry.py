"""Choose the engine for a record type: sandbox accounts never touch the network."""

from __future__ import annotations

from ..settings import Settings
from .base import RecordType, Verifier
from .sandbox import SandboxVerifier


def build_verifier(record_type: RecordType, settings: Settings, *, sandbox: bool) -> Verifier:
    if sandbox:
        return SandboxVerifier(record_type, settings.sandbox_latency_ms)
    if record_type == "email":
        from .email.engine import EmailVerifier

        return EmailVerifier(settings)
    from .phone.engine import PhoneVerifier

    return PhoneVerifier(settings)
