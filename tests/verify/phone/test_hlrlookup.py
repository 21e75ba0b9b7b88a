"""hlrlookup.com v2 adapter against the local lab server (documented response shapes)."""

from __future__ import annotations

import time

import pytest

from apexverify.errors import ConfigurationError
from apexverify.settings import Settings
from apexverify.verify.base import EngineUnavailable
from apexverify.verify.phone.lookup import LookupFailure, LookupResult, RetryPolicy, build_lookup
from apexverify.verify.phone.lookup.hlrlookup import HlrLookupProvider, parse_result
from tests.labs.phone_providers import NumberBehaviour, hlr_result, phone_provider_lab

FAST = RetryPolicy(retries=2, backoff_base=0.01, backoff_max=0.05, max_inline_wait=1.0)
GB_MOBILE = "+447400123456"
DE_MOBILE = "+4915123456789"
FR_MOBILE = "+33612345678"


def _provider(settings: Settings) -> HlrLookupProvider:
    provider = build_lookup(settings, FAST)
    assert isinstance(provider, HlrLookupProvider)
    return provider


async def test_live_ported_result_is_parsed() -> None:
    behaviours = {
        GB_MOBILE: NumberBehaviour(
            live_status="LIVE",
            is_ported="YES",
            current_network=("Virgin Mobile", "23438"),
            original_network=("EE Limited (Orange)", "23433"),
        ),
        DE_MOBILE: NumberBehaviour(live_status="DEAD", current_network=None),
        FR_MOBILE: NumberBehaviour(live_status="ABSENT_SUBSCRIBER", is_ported="NO"),
    }
    with phone_provider_lab(behaviours) as lab:
        provider = _provider(lab.settings("hlrlookup"))
        try:
            out = await provider.lookup_many([GB_MOBILE, DE_MOBILE, FR_MOBILE])
        finally:
            await provider.aclose()
        # one POST carried all three (per-provider batching)
        assert [r.numbers for r in lab.requests] == [[GB_MOBILE, DE_MOBILE, FR_MOBILE]]
    assert out[GB_MOBILE] == LookupResult(
        status="live",
        type="mobile",
        provider_line_type="MOBILE",
        is_ported=True,
        mcc="234",
        mnc="38",
        operator="Virgin Mobile",
        original_operator="EE Limited (Orange)",
    )
    dead, absent = out[DE_MOBILE], out[FR_MOBILE]
    assert isinstance(dead, LookupResult)
    assert dead.status == "dead"
    assert dead.mcc is None
    assert dead.operator is None
    assert isinstance(absent, LookupResult)
    assert absent.status == "absent_subscriber"
    assert absent.is_ported is False


def test_every_documented_live_status_maps_to_the_enum() -> None:
    expected = {
        "LIVE": "live",
        "DEAD": "dead",
        "ABSENT_SUBSCRIBER": "absent_subscriber",
        "NO_TELESERVICE_PROVISIONED": "no_teleservice_provisioned",
        "NOT_AVAILABLE_NETWORK_ONLY": "not_available_network_only",
        "NO_COVERAGE": "no_coverage",
        "NOT_APPLICABLE": "not_applicable",
        "INCONCLUSIVE": "inconclusive",
        "SOMETHING_NEW": "inconclusive",  # unknown to us: not evidence of anything
    }
    for raw, status in expected.items():
        facts = parse_result(hlr_result(GB_MOBILE, NumberBehaviour(live_status=raw)))
        assert facts.status == status


def test_per_number_error_and_unknown_porting() -> None:
    facts = parse_result(hlr_result(GB_MOBILE, NumberBehaviour(hlr_error="INVALID_NUMBER")))
    assert facts.error == "hlrlookup_invalid_number"
    facts = parse_result(hlr_result(GB_MOBILE, NumberBehaviour(is_ported="UNKNOWN")))
    assert facts.is_ported is None


async def test_batches_of_at_most_80() -> None:
    numbers = [f"+4474001{i:05d}" for i in range(170)]
    with phone_provider_lab() as lab:
        provider = _provider(lab.settings("hlrlookup"))
        try:
            out = await provider.lookup_many(numbers + numbers[:10])  # duplicates too
        finally:
            await provider.aclose()
        sizes = sorted(len(r.numbers) for r in lab.requests)
        assert sizes == [10, 80, 80]
        assert sorted(lab.received["hlrlookup"]) == sorted(numbers)
    assert set(out) == set(numbers)
    assert all(isinstance(o, LookupResult) and o.status == "live" for o in out.values())


async def test_rate_limit_honours_retry_after_then_succeeds() -> None:
    behaviours = {GB_MOBILE: NumberBehaviour(rate_limit_times=2, retry_after="0.2")}
    with phone_provider_lab(behaviours) as lab:
        provider = _provider(lab.settings("hlrlookup"))
        started = time.monotonic()
        try:
            out = await provider.lookup_many([GB_MOBILE])
        finally:
            await provider.aclose()
        elapsed = time.monotonic() - started
        assert [r.status for r in lab.requests] == [429, 429, 200]
    assert elapsed >= 0.4  # waited Retry-After twice
    assert isinstance(out[GB_MOBILE], LookupResult)


async def test_long_retry_after_is_deferred_to_the_runner() -> None:
    behaviours = {GB_MOBILE: NumberBehaviour(rate_limit_times=5, retry_after="120")}
    with phone_provider_lab(behaviours) as lab:
        provider = _provider(lab.settings("hlrlookup"))
        try:
            out = await provider.lookup_many([GB_MOBILE])
        finally:
            await provider.aclose()
        assert [r.status for r in lab.requests] == [429]  # no sleeping for two minutes
    assert out[GB_MOBILE] == LookupFailure("rate_limited", transient=True, retry_after=120.0)


async def test_server_errors_are_retried_with_backoff() -> None:
    behaviours = {GB_MOBILE: NumberBehaviour(fail_times=2, fail_status=503)}
    with phone_provider_lab(behaviours) as lab:
        provider = _provider(lab.settings("hlrlookup"))
        try:
            out = await provider.lookup_many([GB_MOBILE])
        finally:
            await provider.aclose()
        assert [r.status for r in lab.requests] == [503, 503, 200]
    assert isinstance(out[GB_MOBILE], LookupResult)


async def test_persistent_server_error_gives_transient_failure() -> None:
    behaviours = {GB_MOBILE: NumberBehaviour(fail_times=10, fail_status=500)}
    with phone_provider_lab(behaviours) as lab:
        provider = _provider(lab.settings("hlrlookup"))
        try:
            out = await provider.lookup_many([GB_MOBILE])
        finally:
            await provider.aclose()
        assert len(lab.requests) == 3  # first try + FAST.retries
    assert out[GB_MOBILE] == LookupFailure("http_500", transient=True)


async def test_timeout_gives_transient_failure() -> None:
    behaviours = {GB_MOBILE: NumberBehaviour(delay_seconds=1.0)}
    with phone_provider_lab(behaviours) as lab:
        settings = lab.settings("hlrlookup", phone_lookup_timeout_seconds=0.2)
        provider = _provider(settings)
        try:
            out = await provider.lookup_many([GB_MOBILE])
        finally:
            await provider.aclose()
        assert len(lab.received["hlrlookup"]) == 3
    assert out[GB_MOBILE] == LookupFailure("timeout", transient=True)


async def test_bad_credentials_make_the_engine_unavailable_without_retry() -> None:
    with phone_provider_lab() as lab:
        provider = _provider(lab.settings("hlrlookup", hlr_api_secret="wrong-secret"))
        try:
            with pytest.raises(EngineUnavailable, match=r"hlrlookup.*HTTP 401") as caught:
                await provider.lookup_many([GB_MOBILE])
        finally:
            await provider.aclose()
        assert [r.status for r in lab.requests] == [401]
    assert "wrong-secret" not in str(caught.value)
    assert lab.hlr_secret not in str(caught.value)


async def test_forbidden_account_makes_the_engine_unavailable() -> None:
    # 403: the credentials are known but the account may not use the API (suspended).
    behaviours = {GB_MOBILE: NumberBehaviour(fail_times=1, fail_status=403)}
    with phone_provider_lab(behaviours) as lab:
        provider = _provider(lab.settings("hlrlookup"))
        try:
            with pytest.raises(EngineUnavailable, match="HTTP 403"):
                await provider.lookup_many([GB_MOBILE])
        finally:
            await provider.aclose()
        assert [r.status for r in lab.requests] == [403]


async def test_connection_refused_is_transient() -> None:
    with phone_provider_lab() as lab:
        settings = lab.settings("hlrlookup")
    # the lab is gone: nothing listens on that port any more
    provider = _provider(settings)
    try:
        out = await provider.lookup_many([GB_MOBILE])
    finally:
        await provider.aclose()
    failure = out[GB_MOBILE]
    assert isinstance(failure, LookupFailure)
    assert failure.transient
    assert failure.reason.startswith("transport_")


async def test_concurrency_is_bounded() -> None:
    # 4 batches of 1, each answered after 0.3 s, with concurrency 2 -> two waves.
    numbers = [GB_MOBILE, DE_MOBILE, FR_MOBILE, "+6581234567"]
    behaviours = {n: NumberBehaviour(delay_seconds=0.3) for n in numbers}
    with phone_provider_lab(behaviours) as lab:
        provider = HlrLookupProvider(
            url=lab.hlr_url,
            api_key=lab.hlr_key,
            api_secret=lab.hlr_secret,
            concurrency=2,
            timeout=2.0,
            policy=FAST,
            batch_size=1,
        )
        started = time.monotonic()
        try:
            out = await provider.lookup_many(numbers)
        finally:
            await provider.aclose()
        elapsed = time.monotonic() - started
    assert all(isinstance(o, LookupResult) for o in out.values())
    assert 0.55 <= elapsed < 1.2


def test_missing_credentials_fail_fast_without_revealing_values() -> None:
    with pytest.raises(ConfigurationError, match="APEXVERIFY_HLR_API_SECRET") as caught:
        build_lookup(Settings(phone_lookup_provider="hlrlookup", hlr_api_key="k-123"))
    assert caught.value.setting == "APEXVERIFY_HLR_API_SECRET"
    assert "k-123" not in str(caught.value)
    with pytest.raises(ConfigurationError) as no_key:
        build_lookup(Settings(phone_lookup_provider="hlrlookup"))
    assert no_key.value.setting == "APEXVERIFY_HLR_API_KEY"
