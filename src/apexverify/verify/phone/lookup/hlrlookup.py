"""hlrlookup.com API v2 adapter (HLR: live status, porting, current network).

Shape checked against hlrlookup.com's own documentation before writing this adapter:

* https://www.hlrlookup.com/knowledge/example-request-and-responses - request
  ``POST https://api.hlrlookup.com/apiv2/hlr`` with JSON
  ``{"api_key", "api_secret", "requests": [{"telephone_number": ...}, ...]}``; response
  ``{"body": {"results": [...]}}`` where each result has ``error`` ("NONE" when fine),
  ``request_parameters.telephone_number`` (our input echoed), ``detected_telephone_number``
  (digits, no "+"), ``live_status``, ``is_ported`` ("YES"/"NO"),
  ``original_network_details``/``current_network_details`` ``{name, mccmnc, country_name,
  country_iso3, country_prefix}`` and ``telephone_number_type`` ("MOBILE", ...).
* https://www.hlrlookup.com/knowledge/usa-status - the same endpoint and body via curl; a
  non-mobile number answers ``live_status`` ``NOT_AVAILABLE_NETWORK_ONLY`` there.
* hlrlookup.com's PHP SDK README (packagist ``hlrlookup/php-sdk``): "Up to 80 numbers per
  request", hence :data:`MAX_BATCH`.

The documented example wraps ``results`` in ``body``; a bare ``{"results": [...]}`` is
accepted too. Results are matched to requests by the echoed input, then by the detected
number, then by position.

Only ``mobile`` and ``mobile_or_landline`` ranges are sent: an HLR holds mobile subscribers,
and every other type would buy a ``NOT_APPLICABLE`` answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ....settings import Settings
from ..typemap import HLRLOOKUP_TYPES, MOBILE_TYPES
from .base import LookupFailure, LookupOutcome, LookupResult, NetworkLookup, require_settings
from .http import HttpProvider, RetryPolicy, gather_or_cancel

MAX_BATCH = 80

# live_status -> guide status (the guide's enum is the lower-case of hlrlookup's).
_STATUSES = {
    "LIVE": "live",
    "DEAD": "dead",
    "ABSENT_SUBSCRIBER": "absent_subscriber",
    "NO_TELESERVICE_PROVISIONED": "no_teleservice_provisioned",
    "NOT_AVAILABLE_NETWORK_ONLY": "not_available_network_only",
    "NO_COVERAGE": "no_coverage",
    "NOT_APPLICABLE": "not_applicable",
    "INCONCLUSIVE": "inconclusive",
}
_PORTED = {"YES": True, "NO": False}


def _split_mccmnc(value: Any) -> tuple[str | None, str | None]:
    digits = str(value or "").strip()
    if len(digits) < 5 or not digits.isdigit():
        return None, None
    return digits[:3], digits[3:]


def _name(details: Any) -> str | None:
    if isinstance(details, dict):
        return str(details.get("name") or "").strip() or None
    return None


def parse_result(item: dict[str, Any]) -> LookupResult:
    """One entry of ``results`` as provider facts."""
    error = str(item.get("error") or "NONE").upper()
    if error != "NONE":
        return LookupResult(error=f"hlrlookup_{error.lower()}")
    raw_status = str(item.get("live_status") or "").upper()
    raw_type = str(item.get("telephone_number_type") or "").upper() or None
    current = item.get("current_network_details")
    mcc, mnc = _split_mccmnc(current.get("mccmnc") if isinstance(current, dict) else None)
    return LookupResult(
        # An unlisted live_status is a fact we cannot interpret: report it as inconclusive.
        status=_STATUSES.get(raw_status, "inconclusive"),
        type=HLRLOOKUP_TYPES.get(raw_type) if raw_type else None,
        provider_line_type=raw_type,
        is_ported=_PORTED.get(str(item.get("is_ported") or "").upper()),
        mcc=mcc,
        mnc=mnc,
        operator=_name(current),
        original_operator=_name(item.get("original_network_details")),
    )


def _match(batch: Sequence[str], results: list[Any]) -> dict[str, LookupOutcome]:
    wanted = set(batch)
    matched: dict[str, LookupOutcome] = {}
    for position, item in enumerate(results):
        if not isinstance(item, dict):
            continue
        params = item.get("request_parameters")
        echoed = params.get("telephone_number") if isinstance(params, dict) else None
        detected = item.get("detected_telephone_number")
        key: str | None = None
        if echoed in wanted:
            key = echoed
        elif detected and f"+{detected}" in wanted:
            key = f"+{detected}"
        elif position < len(batch):
            key = batch[position]
        if key is not None and key not in matched:
            matched[key] = parse_result(item)
    for number in batch:
        # The provider skipped it: not worth paying again blindly, so not transient.
        matched.setdefault(number, LookupFailure("missing_in_response", transient=False))
    return matched


class HlrLookupProvider(HttpProvider, NetworkLookup):
    name = "hlrlookup"
    provider = "hlrlookup"

    def __init__(
        self,
        *,
        url: str,
        api_key: str,
        api_secret: str,
        concurrency: int = 10,
        timeout: float = 10.0,
        policy: RetryPolicy | None = None,
        batch_size: int = MAX_BATCH,
    ) -> None:
        super().__init__(concurrency=concurrency, timeout=timeout, policy=policy or RetryPolicy())
        self._url = url
        self._key = api_key
        self._secret = api_secret
        self.batch_size = max(1, min(batch_size, MAX_BATCH))

    @classmethod
    def from_settings(
        cls, settings: Settings, policy: RetryPolicy | None = None
    ) -> HlrLookupProvider:
        required = {
            "APEXVERIFY_HLR_API_URL": settings.hlr_api_url,
            "APEXVERIFY_HLR_API_KEY": settings.hlr_api_key,
            "APEXVERIFY_HLR_API_SECRET": settings.hlr_api_secret,
        }
        require_settings(
            "hlrlookup", required, "APEXVERIFY_HLR_API_KEY and APEXVERIFY_HLR_API_SECRET"
        )
        return cls(
            url=settings.hlr_api_url,
            api_key=settings.hlr_api_key,
            api_secret=settings.hlr_api_secret,
            concurrency=settings.phone_lookup_concurrency,
            timeout=settings.phone_lookup_timeout_seconds,
            policy=policy or RetryPolicy(retries=settings.phone_lookup_retries),
        )

    def wants(self, phone_type: str) -> bool:
        return phone_type in MOBILE_TYPES

    async def _lookup_batch(self, batch: Sequence[str]) -> dict[str, LookupOutcome]:
        payload = {
            "api_key": self._key,
            "api_secret": self._secret,
            "requests": [{"telephone_number": number} for number in batch],
        }
        response = await self.send(
            lambda: self._client.build_request("POST", self._url, json=payload)
        )
        if isinstance(response, LookupFailure):
            return dict.fromkeys(batch, response)
        try:
            data = response.json()
        except ValueError:
            data = None
        body = data.get("body", data) if isinstance(data, dict) else None
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            return dict.fromkeys(batch, LookupFailure("bad_response", transient=True))
        return _match(batch, results)

    async def lookup_many(self, numbers: Sequence[str]) -> dict[str, LookupOutcome]:
        unique = list(dict.fromkeys(numbers))
        batches = [unique[i : i + self.batch_size] for i in range(0, len(unique), self.batch_size)]
        outcomes: dict[str, LookupOutcome] = {}
        for part in await gather_or_cancel(self._lookup_batch(b) for b in batches):
            outcomes.update(part)
        return outcomes


__all__ = ["MAX_BATCH", "HlrLookupProvider", "parse_result"]
