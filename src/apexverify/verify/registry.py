"""The one place that builds verification engines from settings.

:class:`EngineFactory` implements :class:`~.base.VerifierFactory`: sandbox accounts get the
:class:`~.sandbox.SandboxVerifier` (never any network); real verification gets the email or
phone engine configured by :class:`~apexverify.settings.Settings`. :meth:`EngineFactory.check`
builds every configured engine once at start-up, so a missing credential or a bad provider
setting stops ``serve``/``worker`` with a :class:`~apexverify.errors.ConfigurationError`
instead of failing the first batch.

When ``APEXVERIFY_REDIS_URL`` is set, the email engines a factory builds share their per-MX
connection caps, the per-MX limits learned from replies and the SMTP breakers with every
other process through Redis (``email/redis_slots.py``); the factory owns that one Redis
client, created on the first real email build, and :meth:`EngineFactory.aclose` closes it.

:meth:`EngineFactory.health` and :meth:`EngineFactory.check_health` report the environment
checks of the real engines (the email engine's ``dns``, ``smtp_outbound`` and
``smtp_blocks``, built if it was not yet), for ``/readyz`` and ``/metrics``; the factory is
a :class:`~.base.HealthReporter`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import ConfigurationError
from ..settings import Settings, env_name
from .base import HealthCheck, RecordType, Verifier, VerifierFactory
from .sandbox import SandboxVerifier

if TYPE_CHECKING:
    from .email.engine import EmailVerifier
    from .email.redis_slots import RedisMxSlots
    from .phone.engine import PhoneVerifier

log = logging.getLogger(__name__)

# Set once this process has warned about the default SMTP identity (one WARNING, not one
# per factory: tests and the admin CLI build several).
_identity_warned = False


def warn_default_identity(settings: Settings) -> bool:
    """Log one WARNING per process when real verification would greet MX hosts with the
    default HELO name or envelope sender: ``verify.apexverify.local`` has no DNS, no PTR and
    no SPF, and mail servers block probes from such a name. True when it warned now."""
    global _identity_warned
    defaults = Settings.model_fields
    kept = [
        env_name(name)
        for name in ("smtp_helo_name", "smtp_mail_from")
        if getattr(settings, name) == defaults[name].default
    ]
    if not kept or _identity_warned:
        return False
    _identity_warned = True
    log.warning(
        "%s still the default: mail servers block SMTP probes from a name without DNS. Set a "
        "domain you own whose A record is your outbound IP, with a matching PTR (reverse DNS) "
        "record for that IP and an SPF record allowing it (docs/deployment.md, 'Outbound "
        "SMTP'). Sandbox accounts are not affected: they never probe.",
        " and ".join(kept) + (" is" if len(kept) == 1 else " are"),
    )
    return True


class EngineFactory(VerifierFactory):
    """Builds engines for one process (one per ``serve`` or ``worker``, not per chunk).

    ``on_smtp_reply(stage, code)`` is told of every SMTP reply the email engines receive.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        on_smtp_reply: Callable[[str, int], None] | None = None,
    ) -> None:
        self.settings = settings
        self._on_smtp_reply = on_smtp_reply
        self._redis_slots: RedisMxSlots | None = None
        # One engine per (record type, sandbox) per process, shared by every chunk and unit
        # call (engines take concurrent calls): its SMTP connections, MX and catch-all
        # caches outlive one chunk.
        self._engines: dict[tuple[RecordType, bool], Verifier] = {}
        # /metrics reads health() from a thread of its own: one engine per key all the same.
        self._building = threading.Lock()

    def __repr__(self) -> str:
        shared = "redis" if self.settings.redis_url else "local"
        provider = self.settings.phone_lookup_provider
        return f"<EngineFactory mx_slots={shared} phone_lookup={provider}>"

    def check(self) -> None:
        """Build every configured real engine once and drop it: a missing credential, an
        unusable DNS configuration or a bad Redis URL raises :class:`ConfigurationError`
        naming the setting. Synchronous and offline: engines open connections only when
        they first verify, so the ones built here hold nothing that needs closing."""
        self._email_engine(check_only=True)
        self._phone_engine()
        warn_default_identity(self.settings)  # serve and worker start here
        if self.settings.redis_url:
            from redis.asyncio.connection import parse_url

            try:
                parse_url(self.settings.redis_url)
            except ValueError as exc:
                raise ConfigurationError("APEXVERIFY_REDIS_URL", str(exc)) from None

    def build(self, record_type: RecordType, *, sandbox: bool) -> Verifier:
        """The engine for ``record_type`` (the sandbox one for sandbox accounts), owned by
        the factory: callers share it and never close it; :meth:`aclose` does."""
        engine = self._engines.get((record_type, sandbox))
        if engine is None:
            with self._building:
                engine = self._engines.get((record_type, sandbox))
                if engine is None:
                    engine = self._new(record_type, sandbox)
                    self._engines[(record_type, sandbox)] = engine
        return engine

    def health(self) -> list[HealthCheck]:
        """The last known environment checks of the real engines (no I/O)."""
        return [check for engine in self._real_engines() for check in engine.health()]

    async def check_health(self) -> list[HealthCheck]:
        """The environment checks after refreshing stale ones (the DNS canaries)."""
        return [check for engine in self._real_engines() for check in await engine.check_health()]

    def _real_engines(self) -> list[Verifier]:
        # The email engine is what depends on the network: report it even before its first
        # batch, so /readyz tells a lying resolver before anything is verified.
        self.build("email", sandbox=False)
        return [engine for (_, sandbox), engine in list(self._engines.items()) if not sandbox]

    def _new(self, record_type: RecordType, sandbox: bool) -> Verifier:
        if sandbox:
            return SandboxVerifier(record_type, self.settings.sandbox_latency_ms)
        if record_type == "email":
            return self._email_engine()
        if record_type == "phone":
            return self._phone_engine()
        raise ValueError(f"no engine for record type {record_type!r}")

    async def aclose(self) -> None:
        """Close the engines and what they share (the Redis client)."""
        engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            await engine.aclose()
        slots, self._redis_slots = self._redis_slots, None
        if slots is not None:
            await slots.aclose()

    # -- engines -----------------------------------------------------------------------

    def _email_engine(self, *, check_only: bool = False) -> EmailVerifier:
        import dns.resolver

        from .email.engine import EmailVerifier
        from .email.smtp import ignore_reply

        # check() leaves the Redis client to the first real build (no client outside an
        # event loop); without Redis the caps are in-process.
        shared = bool(self.settings.redis_url) and not check_only
        slots = self._shared_slots() if shared else None
        try:
            return EmailVerifier(
                self.settings,
                mx_slots=slots,
                on_reply=self._on_smtp_reply or ignore_reply,
                # Learned per-MX limits and breakers on the slots' Redis client: every
                # worker slows down (or stops) for an MX at once.
                shared_state=slots.shared_state if slots is not None else None,
            )
        except dns.resolver.NoResolverConfiguration:
            raise ConfigurationError(
                "APEXVERIFY_DNS_NAMESERVERS",
                "the system has no DNS resolver configuration; set the nameservers",
            ) from None

    def _phone_engine(self) -> PhoneVerifier:
        from .phone.engine import PhoneVerifier

        return PhoneVerifier(self.settings)

    def _shared_slots(self) -> RedisMxSlots:
        if self._redis_slots is None:
            from .email.redis_slots import RedisMxSlots

            self._redis_slots = RedisMxSlots(
                self.settings.redis_url, self.settings.smtp_max_connections_per_mx
            )
        return self._redis_slots


__all__ = ["EngineFactory", "VerifierFactory"]
