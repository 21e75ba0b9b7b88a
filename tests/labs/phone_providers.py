"""A local stand-in for hlrlookup.com API v2 and Twilio Lookup v2, for tests.

One threaded HTTP server on 127.0.0.1 (free port) answers both providers in their documented
shapes. A table maps E.164 numbers to :class:`NumberBehaviour` (what to answer, and how to
misbehave: delays for timeouts, 429s with Retry-After, 5xx); numbers not in the table get
the default behaviour (a live, unported mobile). Everything received is recorded, so tests
can prove what was (not) sent to a paid provider.

Usage::

    with phone_provider_lab({"+447700900123": NumberBehaviour(live_status="DEAD")}) as lab:
        settings = lab.settings("hlrlookup")          # Settings pointing at the lab
        ...
        assert lab.received["hlrlookup"] == ["+447700900123"]

Endpoints: ``POST {lab.hlr_url}`` (hlrlookup.com ``/apiv2/hlr``) and
``GET {lab.twilio_url}/v2/PhoneNumbers/{E164}?Fields=line_type_intelligence``.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from apexverify.settings import Settings

HLR_PATH = "/apiv2/hlr"
TWILIO_PREFIX = "/v2/PhoneNumbers/"


@dataclass
class NumberBehaviour:
    """How the lab answers for one number (both providers)."""

    # hlrlookup.com fields
    live_status: str = "LIVE"
    telephone_number_type: str = "MOBILE"
    is_ported: str = "NO"
    current_network: tuple[str, str] | None = ("Lab Mobile", "00101")  # (name, mccmnc)
    original_network: tuple[str, str] | None = ("Lab Mobile", "00101")
    hlr_error: str = "NONE"
    # Twilio Lookup v2 fields
    twilio_valid: bool = True
    twilio_type: str = "mobile"
    twilio_carrier: str | None = "Lab Mobile"
    twilio_mcc: str | None = "001"
    twilio_mnc: str | None = "01"
    twilio_error_code: int | None = None
    # Misbehaviour, applied to any request that carries this number
    delay_seconds: float = 0.0
    rate_limit_times: int = 0  # the first N requests answer 429
    retry_after: str | None = "0"  # Retry-After header of those 429s (None: no header)
    fail_times: int = 0  # the first N requests answer ``fail_status``
    fail_status: int = 500


@dataclass
class LabRequest:
    provider: str  # "hlrlookup" | "twilio"
    numbers: list[str]
    status: int


@dataclass
class PhoneProviderLab:
    base_url: str
    behaviours: dict[str, NumberBehaviour]
    default: NumberBehaviour = field(default_factory=NumberBehaviour)
    hlr_key: str = "lab-hlr-key-5f2c"
    hlr_secret: str = "lab-hlr-secret-9d1e"
    twilio_sid: str = "AC00000000000000000000000000lab"
    twilio_token: str = "lab-twilio-token-77aa"
    received: dict[str, list[str]] = field(default_factory=lambda: {"hlrlookup": [], "twilio": []})
    requests: list[LabRequest] = field(default_factory=list)
    _counts: dict[tuple[str, str], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def hlr_url(self) -> str:
        return self.base_url + HLR_PATH

    @property
    def twilio_url(self) -> str:
        return self.base_url

    def settings_overrides(self, provider: str) -> dict[str, Any]:
        """Settings fields that point ``provider`` ("hlrlookup"/"twilio"/"none") here."""
        return {
            "phone_lookup_provider": provider,
            "hlr_api_url": self.hlr_url,
            "hlr_api_key": self.hlr_key,
            "hlr_api_secret": self.hlr_secret,
            "twilio_api_url": self.twilio_url,
            "twilio_account_sid": self.twilio_sid,
            "twilio_auth_token": self.twilio_token,
            "phone_lookup_timeout_seconds": 2.0,
        }

    def settings(self, provider: str, **overrides: Any) -> Settings:
        return Settings(**{**self.settings_overrides(provider), **overrides})

    def secrets(self) -> list[str]:
        return [self.hlr_key, self.hlr_secret, self.twilio_token]

    def reset(self) -> None:
        with self._lock:
            self.received = {"hlrlookup": [], "twilio": []}
            self.requests.clear()
            self._counts.clear()

    # -- used by the handler -------------------------------------------------------------

    def behaviour(self, number: str) -> NumberBehaviour:
        return self.behaviours.get(number, self.default)

    def _record(self, provider: str, numbers: list[str]) -> tuple[NumberBehaviour, str] | None:
        """Record the request; return (behaviour, "rate_limit" | "fail") if it must fail.

        Per number, the first ``rate_limit_times`` requests answer 429, the next
        ``fail_times`` answer ``fail_status``, the rest answer normally.
        """
        with self._lock:
            self.received[provider].extend(numbers)
            verdict: tuple[NumberBehaviour, str] | None = None
            for number in numbers:
                key = (provider, number)
                seen = self._counts.get(key, 0)
                self._counts[key] = seen + 1
                b = self.behaviour(number)
                if verdict is None and seen < b.rate_limit_times:
                    verdict = (b, "rate_limit")
                elif verdict is None and seen < b.rate_limit_times + b.fail_times:
                    verdict = (b, "fail")
            return verdict

    def _log(self, provider: str, numbers: list[str], status: int) -> None:
        with self._lock:
            self.requests.append(LabRequest(provider, numbers, status))


def hlr_result(number: str, b: NumberBehaviour) -> dict[str, Any]:
    """One ``results`` entry, shaped like hlrlookup.com's documented example response."""

    def details(net: tuple[str, str] | None) -> dict[str, Any]:
        if net is None:
            return {}
        return {
            "name": net[0],
            "mccmnc": net[1],
            "country_name": "Labland",
            "country_iso3": "LAB",
            "country_prefix": "",
        }

    if b.hlr_error != "NONE":
        return {
            "error": b.hlr_error,
            "uuid": "00000000-0000-4000-8000-000000000000",
            "request_parameters": {"telephone_number": number},
            "credits_spent": 0,
        }
    return {
        "error": "NONE",
        "uuid": "00000000-0000-4000-8000-000000000001",
        "request_parameters": {
            "telephone_number": number,
            "save_to_cache": "YES",
            "input_format": "",
            "output_format": "",
            "cache_days_global": 0,
            "cache_days_private": 0,
            "get_ported_date": "NO",
            "get_landline_status": "NO",
            "usa_status": "NO",
        },
        "credits_spent": 1,
        "detected_telephone_number": number.lstrip("+"),
        "formatted_telephone_number": "",
        "live_status": b.live_status,
        "original_network": "AVAILABLE" if b.original_network else "NOT_AVAILABLE",
        "original_network_details": details(b.original_network),
        "current_network": "AVAILABLE" if b.current_network else "NOT_AVAILABLE",
        "current_network_details": details(b.current_network),
        "is_ported": b.is_ported,
        "timestamp": "2026-01-01T00:00:00Z",
        "telephone_number_type": b.telephone_number_type,
        "sms_email": "",
        "mms_email": "",
    }


def twilio_body(number: str, b: NumberBehaviour) -> dict[str, Any]:
    """A Lookup v2 response with the line_type_intelligence package."""
    lti: dict[str, Any] | None = None
    if b.twilio_valid:
        lti = {
            "mobile_country_code": b.twilio_mcc,
            "mobile_network_code": b.twilio_mnc,
            "carrier_name": b.twilio_carrier,
            "type": b.twilio_type,
            "error_code": b.twilio_error_code,
        }
        if b.twilio_error_code is not None:
            lti.update(
                mobile_country_code=None, mobile_network_code=None, carrier_name=None, type=None
            )
    return {
        "calling_country_code": "",
        "country_code": "",
        "phone_number": number,
        "national_format": number,
        "valid": b.twilio_valid,
        "validation_errors": [] if b.twilio_valid else ["NOT_A_NUMBER"],
        "caller_name": None,
        "sim_swap": None,
        "call_forwarding": None,
        "line_type_intelligence": lti,
        "identity_match": None,
        "url": f"https://lookups.twilio.com/v2/PhoneNumbers/{number}",
    }


def _twilio_error(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class _Handler(BaseHTTPRequestHandler):
    server: _LabServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean

    def _reply(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        raw = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left; that is the point of a delay

    def _misbehave(self, provider: str, numbers: list[str]) -> bool:
        lab = self.server.lab
        verdict = lab._record(provider, numbers)
        delay = max((lab.behaviour(n).delay_seconds for n in numbers), default=0.0)
        if delay:
            time.sleep(delay)
        if verdict is None:
            return False
        behaviour, kind = verdict
        if kind == "rate_limit":
            headers = {"Retry-After": behaviour.retry_after} if behaviour.retry_after else {}
            body: Any = (
                _twilio_error(429, 20429, "Too Many Requests")
                if provider == "twilio"
                else {"error": "TOO_MANY_REQUESTS"}
            )
            lab._log(provider, numbers, 429)
            self._reply(429, body, headers)
        else:
            lab._log(provider, numbers, behaviour.fail_status)
            self._reply(behaviour.fail_status, {"error": "INTERNAL_ERROR"})
        return True

    def do_POST(self) -> None:
        lab = self.server.lab
        if urlsplit(self.path).path != HLR_PATH:
            self._reply(404, {"error": "NOT_FOUND"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            data = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._reply(400, {"error": "INVALID_JSON"})
            return
        if data.get("api_key") != lab.hlr_key or data.get("api_secret") != lab.hlr_secret:
            lab._log("hlrlookup", [], 401)
            self._reply(401, {"error": "INVALID_CREDENTIALS"})
            return
        numbers = [str(r.get("telephone_number", "")) for r in data.get("requests", [])]
        if self._misbehave("hlrlookup", numbers):
            return
        lab._log("hlrlookup", numbers, 200)
        results = [hlr_result(n, lab.behaviour(n)) for n in numbers]
        self._reply(200, {"body": {"results": results}})

    def do_GET(self) -> None:
        lab = self.server.lab
        path = urlsplit(self.path).path
        if not path.startswith(TWILIO_PREFIX):
            self._reply(404, _twilio_error(404, 20404, "Not Found"))
            return
        expected = base64.b64encode(f"{lab.twilio_sid}:{lab.twilio_token}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {expected}":
            lab._log("twilio", [], 401)
            self._reply(401, _twilio_error(401, 20003, "Authenticate"))
            return
        number = unquote(path[len(TWILIO_PREFIX) :])
        if self._misbehave("twilio", [number]):
            return
        lab._log("twilio", [number], 200)
        self._reply(200, twilio_body(number, lab.behaviour(number)))


class _LabServer(ThreadingHTTPServer):
    daemon_threads = True
    lab: PhoneProviderLab


@contextmanager
def phone_provider_lab(
    behaviours: Mapping[str, NumberBehaviour] | None = None,
    *,
    default: NumberBehaviour | None = None,
) -> Iterator[PhoneProviderLab]:
    """Run the lab server for the duration of the ``with`` block."""
    server = _LabServer(("127.0.0.1", 0), _Handler)
    host, port = server.server_address[:2]
    lab = PhoneProviderLab(
        base_url=f"http://{host}:{port}",
        behaviours=dict(behaviours or {}),
        default=default or NumberBehaviour(),
    )
    server.lab = lab
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="phone-lab", daemon=True
    )
    thread.start()
    try:
        yield lab
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
