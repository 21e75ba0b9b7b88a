"""The dashboard's sign-in session and CSRF tokens.

The cookie never holds the API key. It holds the key's id, the time of sign-in and an HMAC
(keyed with the service secret) over both plus the key's stored hash. Every request re-reads
the key: a revoked key, an expired session or a forged cookie all mean "signed out".

Forms carry a token derived from a random per-browser cookie (signed double submit). Both
cookies are HttpOnly and SameSite=Strict, so a cross-site form can neither send nor read them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy.orm import Session

from ..accounts import service as accounts
from ..store.models import Account, ApiKey

SESSION_COOKIE = "apexverify_session"
CSRF_COOKIE = "apexverify_csrf"
SESSION_MAX_AGE = 12 * 3600


@dataclass(frozen=True)
class SignedIn:
    account: Account
    key: ApiKey


def _mac(secret: bytes, *parts: str) -> str:
    digest = hmac.new(secret, "|".join(parts).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def session_value(secret: bytes, key: ApiKey, now: float | None = None) -> str:
    issued = str(int(now if now is not None else time.time()))
    return f"{key.id}.{issued}.{_mac(secret, 'session', key.id, key.key_hash, issued)}"


def resolve(session: Session, secret: bytes, value: str | None) -> SignedIn | None:
    """The account behind a session cookie, or None when it is absent, forged, expired or
    its key has been revoked since."""
    if not value or value.count(".") != 2:
        return None
    key_id, issued, mac = value.split(".")
    if not issued.isdigit() or time.time() - int(issued) > SESSION_MAX_AGE:
        return None
    row = accounts.active_key(session, key_id)
    if row is None:
        return None
    expected = _mac(secret, "session", key_id, row[1].key_hash, issued)
    if not hmac.compare_digest(expected, mac):
        return None
    return SignedIn(account=row[0], key=row[1])


def new_csrf_seed() -> str:
    return secrets.token_urlsafe(24)


def csrf_token(secret: bytes, seed: str) -> str:
    return _mac(secret, "csrf", seed)


def csrf_ok(secret: bytes, seed: str | None, token: object) -> bool:
    if not seed or not isinstance(token, str):
        return False
    return hmac.compare_digest(csrf_token(secret, seed), token)
