"""Twilio Lookup v2 adapter against the local lab server (documented response shapes)."""

from __future__ import annotations

import time

import pytest

from apexverify.errors import ConfigurationError
from apexverify.settings import Settings
from apexverify.verify.base import EngineUnavailable
from apexverify.verify.phone.lookup import LookupFailure, LookupResult, RetryPolicy, build_lookup
from apexverify.verify.phone.lookup.twilio import TwilioLookupProvider, parse_response
from tests.labs.phone_providers import NumberBehaviour, phone_provider_lab, twilio_body

FAST = RetryPolicy(retries=2, backoff_base=0.01, backoff_max=0.05, max_inline_wait=1.0)
US_NUMBER = "+12015550123"
GB_MOBILE = "+447400123456"


def _provider(settings: Settings) -> TwilioLookupProvider:
    provider = build_lookup(settings, FAST)
    assert isinstance(provider, TwilioLookupProvider)
    return provider


async def test_line_type_and_carrier_are_parsed() -> None:
    behaviours = {
        US_NUMBER: NumberBehaviour(
            twilio_type="nonFixedVoip",
            twilio_carrier="Bandwidth/13 - Bandwidth.com - SVR",
            twilio_mcc="313",
            twilio_mnc="981",
        ),
        GB_MOBILE: NumberBehaviour(
            twilio_type="mobile", twilio_carrier="Vodafone", twilio_mcc="234", twilio_mnc="15"
        ),
    }
    with phone_provider_lab(behaviours) as lab:
        provider = _provider(lab.settings("twilio"))
        try:
            out = await provider.lookup_many([US_NUMBER, GB_MOBILE, US_NUMBER])
        finally:
            await provider.aclose()
        assert sorted(lab.received["twilio"]) == sorted([US_NUMBER, GB_MOBILE])  # one GET each
    assert out[US_NUMBER] == LookupResult(
        type="voip",
        provider_line_type="nonFixedVoip",
        mcc="313",
        mnc="981",
        operator="Bandwidth/13 - Bandwidth.com - SVR",
        number_valid=True,
    )
    gb = out[GB_MOBILE]
    assert isinstance(gb, LookupResult)
    # Twilio has no live status and no porting flag: the adapter must not invent them.
    assert gb.status is None
    assert gb.is_ported is None
    assert (gb.type, gb.mcc, gb.mnc, gb.operator) == ("mobile", "234", "15", "Vodafone")


def test_invalid_number_and_error_codes() -> None:
    assert parse_response(twilio_body(US_NUMBER, NumberBehaviour(twilio_valid=False))) == (
        LookupResult(number_valid=False)
    )
    facts = parse_response(twilio_body(US_NUMBER, NumberBehaviour(twilio_error_code=60601)))
    assert facts == LookupResult(number_valid=True, error="twilio_60601")
    body = twilio_body(US_NUMBER, NumberBehaviour())
    body["line_type_intelligence"] = None
    assert parse_response(body) == LookupResult(number_valid=True, error="twilio_no_line_type")
    assert parse_response(["not", "an", "object"]) == LookupFailure("bad_response", True)


async def test_number_is_path_encoded() -> None:
    with phone_provider_lab() as lab:
        provider = _provider(lab.settings("twilio"))
        try:
            await provider.lookup_many([GB_MOBILE])
        finally:
            await provider.aclose()
        # "+" must arrive as "+", not as a space (it is %2B-encoded in the path)
        assert lab.received["twilio"] == [GB_MOBILE]


async def test_rate_limit_then_success() -> None:
    behaviours = {GB_MOBILE: NumberBehaviour(rate_limit_times=1, retry_after="0.2")}
    with phone_provider_lab(behaviours) as lab:
        provider = _provider(lab.settings("twilio"))
        started = time.monotonic()
        try:
            out = await provider.lookup_many([GB_MOBILE])
        finally:
            await provider.aclose()
        assert [r.status for r in lab.requests] == [429, 200]
    assert time.monotonic() - started >= 0.2
    assert isinstance(out[GB_MOBILE], LookupResult)


async def test_rate_limit_without_retry_after_uses_backoff() -> None:
    behaviours = {GB_MOBILE: NumberBehaviour(rate_limit_times=10, retry_after=None)}
    with phone_provider_lab(behaviours) as lab:
        provider = _provider(lab.settings("twilio"))
        try:
            out = await provider.lookup_many([GB_MOBILE])
        finally:
            await provider.aclose()
        assert [r.status for r in lab.requests] == [429, 429, 429]
    failure = out[GB_MOBILE]
    assert isinstance(failure, LookupFailure)
    assert failure.reason == "rate_limited"
    assert failure.transient is True


async def test_timeout_and_5xx() -> None:
    behaviours = {
        GB_MOBILE: NumberBehaviour(delay_seconds=1.0),
        US_NUMBER: NumberBehaviour(fail_times=1, fail_status=502),
    }
    with phone_provider_lab(behaviours) as lab:
        provider = _provider(lab.settings("twilio", phone_lookup_timeout_seconds=0.2))
        try:
            out = await provider.lookup_many([GB_MOBILE, US_NUMBER])
        finally:
            await provider.aclose()
    assert out[GB_MOBILE] == LookupFailure("timeout", transient=True)
    assert isinstance(out[US_NUMBER], LookupResult)


async def test_bad_token_makes_the_engine_unavailable() -> None:
    with phone_provider_lab() as lab:
        provider = _provider(lab.settings("twilio", twilio_auth_token="nope"))
        try:
            with pytest.raises(EngineUnavailable, match=r"twilio.*HTTP 401") as caught:
                await provider.lookup_many([GB_MOBILE, US_NUMBER])
        finally:
            await provider.aclose()
        # not retried; the other number's request may or may not have been sent by then
        assert {r.status for r in lab.requests} == {401}
        assert len(lab.requests) <= 2
    assert "nope" not in str(caught.value)


async def test_suspended_account_makes_the_engine_unavailable() -> None:
    behaviours = {GB_MOBILE: NumberBehaviour(fail_times=1, fail_status=403)}
    with phone_provider_lab(behaviours) as lab:
        provider = _provider(lab.settings("twilio"))
        try:
            with pytest.raises(EngineUnavailable, match="HTTP 403"):
                await provider.lookup_many([GB_MOBILE])
        finally:
            await provider.aclose()
        assert [r.status for r in lab.requests] == [403]


def test_missing_credentials() -> None:
    with pytest.raises(ConfigurationError, match="APEXVERIFY_TWILIO_AUTH_TOKEN") as caught:
        build_lookup(Settings(phone_lookup_provider="twilio", twilio_account_sid="AC1"))
    assert caught.value.setting == "APEXVERIFY_TWILIO_AUTH_TOKEN"
    with pytest.raises(ConfigurationError) as no_sid:
        build_lookup(Settings(phone_lookup_provider="twilio", twilio_auth_token="t0k"))
    assert no_sid.value.setting == "APEXVERIFY_TWILIO_ACCOUNT_SID"
    assert "t0k" not in str(no_sid.value)
    # An unknown provider is refused when the settings are built, naming the variable.
    with pytest.raises(ConfigurationError, match="APEXVERIFY_PHONE_LOOKUP_PROVIDER"):
        Settings(phone_lookup_provider="carrier-pigeon")
    assert build_lookup(Settings(phone_lookup_provider="none")) is None
