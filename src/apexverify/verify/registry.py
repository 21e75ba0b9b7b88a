"""Choose the engine for a record type: sandbox accounts never touch the network."""

from __future__ import annotations

from collections.abc import Callable

from ..settings import Settings
from .base import RecordType, Verifier
from .sandbox import SandboxVerifier


def build_verifier(
    record_type: RecordType,
    settings: Settings,
    *,
    sandbox: bool,
    on_smtp_reply: Callable[[str, int], None] | None = None,
) -> Verifier:
    """``on_smtp_reply(stage, code)`` is told of every SMTP reply the email engine receives."""
    if sandbox:
        return SandboxVerifier(record_type, settings.sandbox_latency_ms)
    if record_type == "email":
        from .email.engine import EmailVerifier
        from .email.smtp import ignore_reply

        return EmailVerifier(settings, on_reply=on_smtp_reply or ignore_reply)
    from .phone.engine import PhoneVerifier

    return PhoneVerifier(settings)
