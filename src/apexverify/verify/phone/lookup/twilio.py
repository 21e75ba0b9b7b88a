"""Twilio Lookup v2 adapter (Line Type Intelligence: line type and current carrier).

Shape checked against Twilio's documentation before writing this adapter:

* https://www.twilio.com/docs/lookup/v2-api/line-type-intelligence -
  ``GET https://lookups.twilio.com/v2/PhoneNumbers/{PhoneNumber}?Fields=line_type_intelligence``
  with HTTP basic auth (account SID, auth token). The response's ``line_type_intelligence``
  object has ``mobile_country_code``, ``mobile_network_code`` (mobile numbers only),
  ``carrier_name``, ``type`` and ``error_code`` (null when fine). ``type`` is one of
  ``landline, mobile, fixedVoip, nonFixedVoip, personal, tollFree, premium, sharedCost, uan,
  voicemail, pager, unknown``; carrier fields are null for the non-carrier types. Canadian
  numbers without NPAC approval answer error 60601.
* https://www.twilio.com/docs/lookup/quickstart - the basic lookup's ``valid`` flag and
  ``validation_errors``; the API is HTTPS only.

Twilio has no live/dead status and no porting flag, so the adapter leaves ``status`` and
``is_ported`` as ``None`` and the engine reports ``inconclusive`` (mobile) or
``not_applicable`` (other types). Its carrier comes from number-portability data, so
MCC/MNC/carrier are the *current* network.

There is no batch endpoint: one GET per number, at most ``concurrency`` at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from ....settings import Settings
from ..typemap import TWILIO_TYPES
from .base import LookupFailure, LookupOutcome, LookupResult, NetworkLookup, require_settings
from .http import HttpProvider, RetryPolicy, gather_or_cancel


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value).strip() or None


def parse_response(data: Any) -> LookupOutcome:
    """A Lookup v2 body as provider facts."""
    if not isinstance(data, dict):
        return LookupFailure("bad_response", transient=True)
    if data.get("valid") is False:
        return LookupResult(number_valid=False)
    lti = data.get("line_type_intelligence")
    if not isinstance(lti, dict):
        return LookupResult(number_valid=_valid(data), error="twilio_no_line_type")
    if lti.get("error_code") is not None:
        return LookupResult(number_valid=_valid(data), error=f"twilio_{lti['error_code']}")
    raw_type = _text(lti.get("type"))
    return LookupResult(
        type=TWILIO_TYPES.get(raw_type) if raw_type else None,
        provider_line_type=raw_type,
        mcc=_text(lti.get("mobile_country_code")),
        mnc=_text(lti.get("mobile_network_code")),
        operator=_text(lti.get("carrier_name")),
        number_valid=_valid(data),
    )


def _valid(data: dict[str, Any]) -> bool | None:
    value = data.get("valid")
    return value if isinstance(value, bool) else None


class TwilioLookupProvider(HttpProvider, NetworkLookup):
    name = "twilio"
    provider = "twilio"

    def __init__(
        self,
        *,
        url: str,
        account_sid: str,
        auth_token: str,
        concurrency: int = 10,
        timeout: float = 10.0,
        policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(
            concurrency=concurrency,
            timeout=timeout,
            policy=policy or RetryPolicy(),
            auth=httpx.BasicAuth(account_sid, auth_token),
        )
        self._base = url.rstrip("/")

    @classmethod
    def from_settings(
        cls, settings: Settings, policy: RetryPolicy | None = None
    ) -> TwilioLookupProvider:
        required = {
            "APEXVERIFY_TWILIO_API_URL": settings.twilio_api_url,
            "APEXVERIFY_TWILIO_ACCOUNT_SID": settings.twilio_account_sid,
            "APEXVERIFY_TWILIO_AUTH_TOKEN": settings.twilio_auth_token,
        }
        require_settings(
            "twilio", required, "APEXVERIFY_TWILIO_ACCOUNT_SID and APEXVERIFY_TWILIO_AUTH_TOKEN"
        )
        return cls(
            url=settings.twilio_api_url,
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token,
            concurrency=settings.phone_lookup_concurrency,
            timeout=settings.phone_lookup_timeout_seconds,
            policy=policy or RetryPolicy(retries=settings.phone_lookup_retries),
        )

    def wants(self, phone_type: str) -> bool:
        # Line type and current carrier are informative for every allocated range (a
        # landline range number ported to VoIP, say), so every valid number is sent.
        return True

    async def _lookup_one(self, number: str) -> LookupOutcome:
        url = f"{self._base}/v2/PhoneNumbers/{quote(number, safe='')}"
        params = {"Fields": "line_type_intelligence"}
        response = await self.send(lambda: self._client.build_request("GET", url, params=params))
        if isinstance(response, LookupFailure):
            return response
        try:
            return parse_response(response.json())
        except ValueError:
            return LookupFailure("bad_response", transient=True)

    async def lookup_many(self, numbers: Sequence[str]) -> dict[str, LookupOutcome]:
        unique = list(dict.fromkeys(numbers))
        outcomes = await gather_or_cancel(self._lookup_one(number) for number in unique)
        return dict(zip(unique, outcomes, strict=True))
