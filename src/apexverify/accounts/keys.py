"""API keys: random, stored as a SHA-256 hash, in two kinds.

A plain (unsalted) hash is enough because keys carry 256 bits of randomness: there is nothing
to brute-force, and a fixed hash lets authentication be a single indexed lookup.

- **secret** keys (``apx_...``): every endpoint, shown once, for servers only.
- **publishable** keys (``apx_pub_...``): ``POST /v1/unit`` only, and only from the browser
  origins the key lists (``docs/browser.md``). They are meant to be written into a web page,
  so they are not secret: the clear value is kept too, to be shown again.

The prefix tells the edges (rate limiter, CORS) which kind a key claims to be without a
database lookup; the stored ``kind`` is what authorization trusts. Secret keys are never
generated with the publishable prefix, so the two agree.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from enum import StrEnum
from urllib.parse import urlsplit

KEY_PREFIX = "apx_"
PUBLISHABLE_PREFIX = "apx_pub_"
# How many origins one publishable key may list: a sign-up form lives on a few sites, and
# the list is shown in full on the dashboard.
MAX_ORIGINS = 20
# An origin is scheme://host[:port]; a DNS name is at most 253 characters.
MAX_ORIGIN_LENGTH = 300
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Letters, digits and hyphens in dot-separated labels (an IPv4 address fits too).
_HOST_NAME = re.compile(
    r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)


class KeyKind(StrEnum):
    SECRET = "secret"
    PUBLISHABLE = "publishable"


def generate_key(kind: KeyKind = KeyKind.SECRET) -> str:
    if kind is KeyKind.PUBLISHABLE:
        return PUBLISHABLE_PREFIX + secrets.token_urlsafe(32)
    while True:
        # token_urlsafe may start with "pub_" (one time in 16.7 million): draw again, so that
        # no secret key ever looks publishable to the rate limiter or the CORS middleware.
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        if not looks_publishable(key):
            return key


def looks_publishable(plaintext: str) -> bool:
    """Whether a presented key claims to be publishable (its prefix; nothing is looked up)."""
    return plaintext.startswith(PUBLISHABLE_PREFIX)


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8", "surrogatepass")).hexdigest()


def display_prefix(plaintext: str) -> str:
    # A publishable key's first 10 characters would be its prefix and 2 random ones.
    return plaintext[:14] if looks_publishable(plaintext) else plaintext[:10]


class InvalidOrigin(ValueError):
    """An allowed origin that is not ``scheme://host[:port]`` (the message says why)."""


def normalize_origin(text: str) -> str:
    """``text`` as a browser serializes an ``Origin`` header: lower-case scheme and host, no
    default port, no path. Exact origins only: a wildcard would let any subdomain (a taken
    over one included) spend the account's credits, and a form lives on a few known sites."""
    value = text.strip()
    if value.endswith("/"):
        value = value[:-1]  # "https://a.example/" is how people copy an origin
    try:
        parts = urlsplit(value)
    except ValueError:  # a bracketed host that is not an IPv6 address
        raise InvalidOrigin(f"{text!r} is not an origin: write http(s)://host[:port]") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not value.lower().startswith(scheme + "://"):
        raise InvalidOrigin(f"{text!r} is not an origin: write http(s)://host[:port]")
    if parts.path or parts.query or parts.fragment or "?" in value or "#" in value:
        raise InvalidOrigin(f"{text!r} has a path: an origin is only scheme://host[:port]")
    if parts.username is not None or parts.password is not None:
        raise InvalidOrigin(f"{text!r} has credentials: an origin is scheme://host[:port]")
    host = _origin_host(text, parts.hostname or "")
    try:
        port = parts.port
    except ValueError:
        raise InvalidOrigin(f"{text!r}: the port must be a number from 1 to 65535") from None
    if port == 0:
        raise InvalidOrigin(f"{text!r}: the port must be a number from 1 to 65535")
    origin = f"{scheme}://{host}"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        origin += f":{port}"
    if len(origin) > MAX_ORIGIN_LENGTH:
        raise InvalidOrigin(f"an origin has at most {MAX_ORIGIN_LENGTH} characters")
    return origin


def _origin_host(text: str, hostname: str) -> str:
    if not hostname:
        raise InvalidOrigin(f"{text!r} has no host")
    if "*" in hostname:
        raise InvalidOrigin(f"{text!r}: wildcards are not accepted; list each origin")
    if ":" in hostname:
        try:
            return f"[{ipaddress.IPv6Address(hostname).compressed}]"  # as browsers write it
        except ValueError:
            raise InvalidOrigin(f"{text!r}: the host is not a valid IPv6 address") from None
    try:
        # Browsers send an internationalized host in its ASCII (punycode) form.
        host = hostname.encode("idna").decode("ascii").lower()
    except UnicodeError:
        host = ""
    if not _HOST_NAME.fullmatch(host):
        raise InvalidOrigin(f"{text!r}: the host is not a valid host name")
    return host


def normalize_origins(texts: list[str] | tuple[str, ...]) -> list[str]:
    """The allowed origins of a new publishable key: at least one, at most MAX_ORIGINS,
    each normalized, duplicates dropped (first spelling's order kept)."""
    origins = list(dict.fromkeys(normalize_origin(t) for t in texts if t.strip()))
    if not origins:
        raise InvalidOrigin("a publishable key needs at least one allowed origin")
    if len(origins) > MAX_ORIGINS:
        raise InvalidOrigin(f"a publishable key lists at most {MAX_ORIGINS} origins")
    return origins
