"""Email syntax: normalization used at parse time and by the engine.

``normalize_email`` returns the canonical form (local part as written, domain lower-cased and
IDNA-encoded) or ``None`` when the address is not syntactically valid.
"""

from __future__ import annotations

import re

import idna

_ATEXT = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]"
_ASCII_EMAIL = re.compile(
    rf"^{_ATEXT}+(?:\.{_ATEXT}+)*@(?:[a-z0-9](?:[a-z0-9-]{{0,61}}[a-z0-9])?\.)+"
    r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$",
    re.IGNORECASE,
)


def normalize_email(raw: str) -> str | None:
    """Canonical form of ``raw`` or ``None`` if it is not a valid address."""
    if len(raw) <= 254 and raw.isascii() and _ASCII_EMAIL.match(raw):
        local, _, domain = raw.rpartition("@")
        if len(local) <= 64 and len(domain) <= 253:
            return f"{local}@{domain.lower()}"
        return None
    return _normalize_international(raw)


def _normalize_international(raw: str) -> str | None:
    local, sep, domain = raw.rpartition("@")
    if not sep or not local or not domain or len(local.encode()) > 64:
        return None
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:
        return None
    candidate = f"{local}@{ascii_domain}" if local.isascii() else None
    if candidate is not None and _ASCII_EMAIL.match(candidate):
        return candidate if len(candidate) <= 254 else None
    if not local.isascii() and _ASCII_EMAIL.match(f"x@{ascii_domain}"):
        if any(c.isspace() or c in '"(),:;<>@[\\]' for c in local):
            return None
        return f"{local}@{ascii_domain}"
    return None
