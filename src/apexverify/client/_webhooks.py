"""Check that a webhook request came from the server (Standard Webhooks signatures).

    from apexverify.client import verify_webhook, WebhookVerificationError
    event = verify_webhook(request_body, request_headers, "whsec_...")

The standard library only: an HMAC-SHA256 of ``{webhook-id}.{webhook-timestamp}.{body}``
keyed with the secret's bytes, compared in constant time with each ``v1,`` signature of the
``webhook-signature`` header, and a timestamp within ``tolerance`` seconds (a replayed old
request is refused). See docs/webhooks.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from ._errors import ApexVerifyError

DEFAULT_TOLERANCE_SECONDS = 300


class WebhookVerificationError(ApexVerifyError):
    """The request is not a webhook signed with this secret (or it is too old or new)."""


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise WebhookVerificationError(f"missing header {name}")


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the secret is not a whsec_ secret") from None


def verify_webhook(
    payload: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> dict[str, Any]:
    """The event (``{"type", "timestamp", "data"}``) when ``headers`` sign ``payload`` with
    ``secret``; raises :class:`WebhookVerificationError` otherwise. ``payload`` is the raw
    body, exactly as received (not re-serialized JSON)."""
    body = payload.encode() if isinstance(payload, str) else payload
    msg_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    try:
        sent_at = int(stamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a number") from None
    if abs((time.time() if now is None else now) - sent_at) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is too far from now (a replay?)")
    signed = f"{msg_id}.{sent_at}.".encode() + body
    expected = base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest())
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(expected, value.encode()):
            return dict(json.loads(body))
    raise WebhookVerificationError("no signature matches")
