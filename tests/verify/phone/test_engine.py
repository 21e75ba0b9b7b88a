"""PhoneVerifier end to end against the lab: what is sent, what is reported, retries."""

from __future__ import annotations

import logging

import pytest

from apexverify.settings import Settings
from apexverify.verify.base import EngineUnavailable, PhoneResult, Retry, VerifyContext, VerifyItem
from apexverify.verify.phone import PhoneVerifier, verify_phones
from apexverify.verify.phone.lookup import RetryPolicy
from apexverify.verify.registry import EngineFactory
from tests.labs.phone_providers import NumberBehaviour, PhoneProviderLab, phone_provider_lab

FAST = RetryPolicy(retries=1, backoff_base=0.01, backoff_max=0.02, max_inline_wait=0.5)
CTX = VerifyContext(target_country="GB", max_attempts=3)

GB_MOBILE = "+447400123456"
GB_MOBILE_2 = "+447400123457"
GB_LANDLINE = "+441212345678"
DE_MOBILE = "+4915123456789"
FR_MOBILE = "+33612345678"
US_SHARED = "+12015550123"
UNALLOCATED = "+447700900000"
SYNTAX = "12"


def _items(*values: str, attempt: int = 1) -> list[VerifyItem]:
    return [VerifyItem(v, attempt) for v in values]


def _verifier(lab: PhoneProviderLab, provider: str, **overrides: object) -> PhoneVerifier:
    return PhoneVerifier(lab.settings(provider, **overrides), policy=FAST)


def _final(outcome: object) -> PhoneResult:
    assert isinstance(outcome, PhoneResult)
    return outcome


async def test_offline_only_when_no_provider() -> None:
    verifier = PhoneVerifier(Settings(phone_lookup_provider="none"))
    out = await verifier.verify_many(
        _items(GB_MOBILE, "07400 123456", GB_LANDLINE, UNALLOCATED, SYNTAX), CTX
    )
    await verifier.aclose()
    results = [_final(o) for o in out]
    assert [r.verdict for r in results] == ["unknown", "unknown", "unknown", "wrong", "wrong"]
    assert [r.status for r in results] == [
        "inconclusive",
        "inconclusive",
        "not_applicable",
        "not_applicable",
        "not_applicable",
    ]
    assert results[4].is_syntax_error
    assert not any(r.is_ported or r.current_network_mcc for r in results)
    assert results[0].operator == "Three"
    assert results[0].extra["operator_source"] == "range_allocation"


async def test_hlr_sends_only_valid_mobiles_once_and_merges_facts() -> None:
    behaviours = {
        GB_MOBILE: NumberBehaviour(
            live_status="LIVE",
            is_ported="YES",
            current_network=("Virgin Mobile", "23438"),
            original_network=("Three", "23420"),
        ),
        DE_MOBILE: NumberBehaviour(live_status="DEAD"),
        FR_MOBILE: NumberBehaviour(live_status="ABSENT_SUBSCRIBER"),
        GB_MOBILE_2: NumberBehaviour(live_status="NO_TELESERVICE_PROVISIONED"),
        US_SHARED: NumberBehaviour(live_status="NOT_APPLICABLE", telephone_number_type="LANDLINE"),
    }
    values = [
        GB_MOBILE,
        "07400 123456",
        GB_MOBILE,  # the same number three times, two forms
        DE_MOBILE,
        FR_MOBILE,
        GB_MOBILE_2,
        US_SHARED,
        GB_LANDLINE,
        "+448001234567",  # landline and toll-free: an HLR has nothing to say
        UNALLOCATED,
        SYNTAX,
        "not a phone",  # never worth paying for
    ]
    with phone_provider_lab(behaviours) as lab:
        verifier = _verifier(lab, "hlrlookup")
        out = await verifier.verify_many(_items(*values), CTX)
        await verifier.aclose()
        assert sorted(lab.received["hlrlookup"]) == sorted(
            [GB_MOBILE, DE_MOBILE, FR_MOBILE, GB_MOBILE_2, US_SHARED]
        )
        assert len(lab.requests) == 1
    r = [_final(o) for o in out]
    live = r[0]
    assert (live.verdict, live.status, live.type, live.is_ported) == (
        "valid",
        "live",
        "mobile",
        True,
    )
    assert (live.current_network_mcc, live.current_network_mnc) == ("234", "38")
    assert live.operator == "Virgin Mobile"
    assert live.extra["operator_source"] == "hlrlookup"
    assert live.extra["original_operator"] == "Three"
    assert live.extra["evidence"] == "hlrlookup"
    assert r[1] == live
    assert r[2] == live
    assert (r[3].verdict, r[3].status) == ("wrong", "dead")
    assert (r[4].verdict, r[4].status) == ("unknown", "absent_subscriber")
    assert (r[5].verdict, r[5].status) == ("wrong", "no_teleservice_provisioned")
    assert (r[6].verdict, r[6].status, r[6].type) == ("unknown", "not_applicable", "landline")
    assert (r[7].verdict, r[7].status, r[7].extra["evidence"]) == (
        "unknown",
        "not_applicable",
        "offline",
    )
    assert r[8].type == "toll_free"
    assert r[9].verdict == "wrong"
    assert r[10].is_syntax_error
    assert r[11].is_syntax_error


async def test_twilio_is_honest_about_liveness() -> None:
    behaviours = {
        GB_MOBILE: NumberBehaviour(
            twilio_type="mobile", twilio_carrier="Vodafone", twilio_mcc="234", twilio_mnc="15"
        ),
        GB_LANDLINE: NumberBehaviour(
            twilio_type="fixedVoip", twilio_carrier="Lab VoIP", twilio_mcc=None, twilio_mnc=None
        ),
        DE_MOBILE: NumberBehaviour(twilio_valid=False),
        FR_MOBILE: NumberBehaviour(twilio_error_code=60600),
    }
    values = [GB_MOBILE, GB_LANDLINE, DE_MOBILE, FR_MOBILE, UNALLOCATED, SYNTAX]
    with phone_provider_lab(behaviours) as lab:
        verifier = _verifier(lab, "twilio")
        out = await verifier.verify_many(_items(*values), CTX)
        await verifier.aclose()
        assert sorted(lab.received["twilio"]) == sorted(
            [GB_MOBILE, GB_LANDLINE, DE_MOBILE, FR_MOBILE]
        )
    mobile, voip, invalid, errored, unallocated, syntax = (_final(o) for o in out)
    assert (mobile.verdict, mobile.status, mobile.type) == ("unknown", "inconclusive", "mobile")
    assert (mobile.current_network_mcc, mobile.current_network_mnc) == ("234", "15")
    assert mobile.operator == "Vodafone"
    assert mobile.is_ported is False  # Twilio says nothing about porting
    assert mobile.extra["operator_source"] == "twilio"
    assert (voip.type, voip.status, voip.extra["provider_line_type"]) == (
        "voip",
        "not_applicable",
        "fixedVoip",
    )
    assert invalid.verdict == "wrong"
    assert (errored.verdict, errored.extra["lookup_error"]) == ("unknown", "twilio_60600")
    assert errored.extra["evidence"] == "offline"
    assert unallocated.verdict == "wrong"
    assert syntax.is_syntax_error


async def test_rate_limited_numbers_are_retried_until_the_last_attempt() -> None:
    behaviours = {GB_MOBILE: NumberBehaviour(rate_limit_times=100, retry_after="90")}
    with phone_provider_lab(behaviours) as lab:
        verifier = _verifier(lab, "hlrlookup")
        first = await verifier.verify_many(_items(GB_MOBILE, GB_LANDLINE), CTX)
        assert first[0] == Retry(90.0, "hlrlookup: rate_limited")
        assert isinstance(first[1], PhoneResult)  # not looked up, so final at once
        last = await verifier.verify_many(_items(GB_MOBILE, attempt=3), CTX)
        await verifier.aclose()
    result = _final(last[0])
    assert (result.verdict, result.status) == ("unknown", "inconclusive")
    assert result.extra["lookup_error"] == "rate_limited"


async def test_timeouts_ask_for_a_later_retry() -> None:
    behaviours = {GB_MOBILE: NumberBehaviour(delay_seconds=1.0)}
    with phone_provider_lab(behaviours) as lab:
        verifier = _verifier(lab, "hlrlookup", phone_lookup_timeout_seconds=0.1)
        out = await verifier.verify_many(_items(GB_MOBILE), CTX)
        await verifier.aclose()
    assert isinstance(out[0], Retry)
    assert out[0].after_seconds > 0
    assert out[0].reason == "hlrlookup: timeout"


@pytest.mark.parametrize("provider", ["hlrlookup", "twilio"])
async def test_refused_credentials_make_the_engine_unavailable(provider: str) -> None:
    # Not a per-number failure and not worth retrying: the whole call fails, so the caller
    # can stop the batch instead of paying for offline-only results.
    with phone_provider_lab() as lab:
        verifier = _verifier(lab, provider, hlr_api_key="revoked", twilio_auth_token="revoked")
        try:
            with pytest.raises(EngineUnavailable, match=f"{provider}.*HTTP 401"):
                await verifier.verify_many(_items(GB_MOBILE, DE_MOBILE), CTX)
        finally:
            await verifier.aclose()
        assert {r.status for r in lab.requests} == {401}


async def test_lookups_are_cached_across_chunks() -> None:
    with phone_provider_lab() as lab:
        verifier = _verifier(lab, "hlrlookup")
        await verifier.verify_many(_items(GB_MOBILE), CTX)
        again = await verifier.verify_many(_items(GB_MOBILE, DE_MOBILE), CTX)
        await verifier.aclose()
        assert lab.received["hlrlookup"] == [GB_MOBILE, DE_MOBILE]
    assert all(_final(o).verdict == "valid" for o in again)


@pytest.mark.parametrize("provider", ["hlrlookup", "twilio"])
async def test_credentials_never_leak(provider: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    behaviours = {
        DE_MOBILE: NumberBehaviour(fail_times=5),
        FR_MOBILE: NumberBehaviour(rate_limit_times=5, retry_after="600"),
    }
    with phone_provider_lab(behaviours) as lab:
        verifier = _verifier(lab, provider)
        out = await verifier.verify_many(_items(GB_MOBILE, DE_MOBILE, FR_MOBILE), CTX)
        last = await verifier.verify_many(_items(DE_MOBILE, attempt=3), CTX)
        bad = _verifier(lab, provider, hlr_api_secret="x", twilio_auth_token="x")
        with pytest.raises(EngineUnavailable) as denied:
            await bad.verify_many(_items(GB_MOBILE), CTX)
        texts = [repr(verifier), repr(verifier._lookup), repr(bad), caplog.text]
        texts += [str(denied.value), repr(denied.value)]
        texts += [repr(o) for o in [*out, *last]]
        texts += [str(o.to_dict()) for o in [*out, *last] if isinstance(o, PhoneResult)]
        await verifier.aclose()
        await bad.aclose()
        secrets = lab.secrets()
    blob = "\n".join(texts)
    for secret in secrets:
        assert secret not in blob


async def test_verify_phones_library_entry_retries_and_returns_final_results() -> None:
    behaviours = {GB_MOBILE: NumberBehaviour(fail_times=1, fail_status=503)}
    with phone_provider_lab(behaviours) as lab:
        settings = lab.settings("hlrlookup", phone_lookup_retries=0, max_verify_attempts=3)
        results = await verify_phones(
            ["07400 123456", "0121 234 5678", "nope"], settings, "GB", max_retry_wait=0.01
        )
        assert [r.status for r in lab.requests] == [503, 200]
    assert [r.verdict for r in results] == ["valid", "unknown", "wrong"]
    assert results[0].status == "live"


def test_factory_builds_the_phone_engine() -> None:
    verifier = EngineFactory(Settings()).build("phone", sandbox=False)
    assert isinstance(verifier, PhoneVerifier)
    assert verifier.record_type == "phone"
