"""Signing secrets and signatures, the Standard Webhooks way (standardwebhooks.com).

A secret is ``whsec_`` + base64 of 32 random bytes. A delivery carries three headers:

    webhook-id          the delivery's id, the same on every attempt (idempotency key)
    webhook-timestamp   the attempt's time, integer seconds since the epoch
    webhook-signature   ``v1,`` + base64(HMAC-SHA256(secret bytes, f"{id}.{timestamp}.{body}"))

At rest the secret is sealed with AES-GCM under a key derived from the server's secret key
(``APEXVERIFY_SECRET_KEY`` or ``DATA_DIR/secret.key``), the endpoint id as associated data: a
database dump or backup alone does not reveal it, and a sealed value copied onto another row
does not open. The signature needs the secret itself, so it cannot be hashed like an API key;
it is shown once, when the endpoint is created.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SECRET_PREFIX = "whsec_"
_SEALED_PREFIX = "v1:"
_SEAL_LABEL = b"apexverify webhook secret seal v1"


class SealBroken(Exception):
    """A sealed secret does not open: the server's secret key changed, or the row was
    tampered with. The endpoint must be created again."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one attempt."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id, timestamp, body),
    }


def _seal_key(server_secret: bytes) -> bytes:
    # A key of its own: the server secret also keys the cache hashes.
    return hmac.new(server_secret, _SEAL_LABEL, hashlib.sha256).digest()


def seal(server_secret: bytes, endpoint_id: str, secret: str) -> str:
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_seal_key(server_secret)).encrypt(nonce, secret.encode(), endpoint_id.encode())
    return _SEALED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(server_secret: bytes, endpoint_id: str, sealed: str) -> str:
    """The endpoint's secret; raises :class:`SealBroken` when it does not open."""
    if not sealed.startswith(_SEALED_PREFIX):
        raise SealBroken("not a sealed webhook secret")
    try:
        raw = base64.urlsafe_b64decode(sealed.removeprefix(_SEALED_PREFIX))
        plain = AESGCM(_seal_key(server_secret)).decrypt(raw[:12], raw[12:], endpoint_id.encode())
    except (InvalidTag, ValueError):
        raise SealBroken(
            "the signing secret cannot be opened (the server's secret key changed?); "
            "remove the endpoint and add it again"
        ) from None
    return plain.decode()
