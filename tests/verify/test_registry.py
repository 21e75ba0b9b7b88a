"""EngineFactory: the one builder of engines, and its start-up check."""

from __future__ import annotations

import pytest

from apexverify.errors import ConfigurationError
from apexverify.settings import Settings
from apexverify.verify.base import EmailResult, VerifierFactory, VerifyContext, VerifyItem
from apexverify.verify.email.engine import EmailVerifier
from apexverify.verify.email.redis_slots import RedisMxSlots
from apexverify.verify.email.slots import LocalMxSlots
from apexverify.verify.phone.engine import PhoneVerifier
from apexverify.verify.registry import EngineFactory
from apexverify.verify.sandbox import SandboxVerifier


def test_check_passes_for_the_defaults_and_configured_providers() -> None:
    EngineFactory(Settings()).check()
    EngineFactory(
        Settings(phone_lookup_provider="hlrlookup", hlr_api_key="k", hlr_api_secret="s")
    ).check()
    EngineFactory(
        Settings(phone_lookup_provider="twilio", twilio_account_sid="AC1", twilio_auth_token="t")
    ).check()


def test_check_names_the_missing_hlrlookup_key() -> None:
    factory = EngineFactory(Settings(phone_lookup_provider="hlrlookup", hlr_api_secret="s3cret"))
    with pytest.raises(ConfigurationError) as caught:
        factory.check()
    assert caught.value.setting == "APEXVERIFY_HLR_API_KEY"
    assert "s3cret" not in str(caught.value)


def test_check_names_the_missing_twilio_token() -> None:
    factory = EngineFactory(Settings(phone_lookup_provider="twilio", twilio_account_sid="AC1"))
    with pytest.raises(ConfigurationError) as caught:
        factory.check()
    assert caught.value.setting == "APEXVERIFY_TWILIO_AUTH_TOKEN"


def test_check_names_an_empty_provider_url() -> None:
    settings = Settings(
        phone_lookup_provider="twilio",
        twilio_account_sid="AC1",
        twilio_auth_token="t",
        twilio_api_url="",
    )
    with pytest.raises(ConfigurationError) as caught:
        EngineFactory(settings).check()
    assert caught.value.setting == "APEXVERIFY_TWILIO_API_URL"


async def test_build_picks_the_engine() -> None:
    factory: VerifierFactory = EngineFactory(Settings())
    sandbox = factory.build("phone", sandbox=True)
    assert isinstance(sandbox, SandboxVerifier)
    assert sandbox.record_type == "phone"
    email = factory.build("email", sandbox=False)
    assert isinstance(email, EmailVerifier)
    assert isinstance(email._slots, LocalMxSlots)
    phone = factory.build("phone", sandbox=False)
    assert isinstance(phone, PhoneVerifier)
    assert phone.record_type == "phone"
    # A sandbox engine never touches the network, whatever the settings.
    out = await factory.build("email", sandbox=True).verify_many(
        [VerifyItem("valid@example.com")], VerifyContext()
    )
    assert isinstance(out[0], EmailResult)
    assert out[0].verdict == "valid"


async def test_email_engines_share_one_redis_client_per_factory() -> None:
    # No Redis is contacted here: the client connects on the first slot taken.
    settings = Settings(redis_url="redis://127.0.0.1:6379/0", smtp_max_connections_per_mx=3)
    factory = EngineFactory(settings)
    factory.check()
    assert factory._redis_slots is None  # the check creates no client
    first = factory.build("email", sandbox=False)
    second = factory.build("email", sandbox=False)
    assert isinstance(first, EmailVerifier)
    assert isinstance(second, EmailVerifier)
    assert isinstance(first._slots, RedisMxSlots)
    assert first._slots is second._slots
    other = EngineFactory(settings).build("email", sandbox=False)
    assert isinstance(other, EmailVerifier)
    assert other._slots is not first._slots
    await factory.aclose()
    assert factory._redis_slots is None
    await factory.aclose()  # idempotent


def test_smtp_replies_reach_the_observer() -> None:
    seen: list[tuple[str, int]] = []
    email = EngineFactory(Settings(), on_smtp_reply=lambda s, c: seen.append((s, c))).build(
        "email", sandbox=False
    )
    assert isinstance(email, EmailVerifier)
    email._config.on_reply("greeting", 220)
    assert seen == [("greeting", 220)]
