"""Domain typo suggestions (``gmial.com`` -> ``gmail.com``) for the ``did_you_mean`` field.

Only domains within one edit (insertion, deletion, substitution or adjacent transposition)
of a well-known provider are suggested; that catches the common slips without suggesting
``gmx.com`` for ``gmail.com``-like business domains.
"""

from __future__ import annotations

from functools import lru_cache

from .lists import free_providers

# The handful of domains that make up most consumer addresses; typos of rarer providers are
# too likely to be real, distinct domains.
POPULAR_DOMAINS = (
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "hotmail.com",
    "outlook.com",
    "live.com",
    "icloud.com",
    "aol.com",
    "msn.com",
    "comcast.net",
    "protonmail.com",
    "yandex.ru",
    "mail.ru",
    "gmx.de",
    "web.de",
    "orange.fr",
    "yahoo.co.uk",
    "hotmail.co.uk",
)


def _within_one_edit(a: str, b: str) -> bool:
    """Optimal-string-alignment distance <= 1, without building the full matrix."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diffs = [i for i in range(la) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        return (
            len(diffs) == 2
            and diffs[1] == diffs[0] + 1
            and a[diffs[0]] == b[diffs[1]]
            and a[diffs[1]] == b[diffs[0]]
        )
    short, long_ = (a, b) if la < lb else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1 :]


@lru_cache(maxsize=65536)
def suggest_domain(domain: str) -> str | None:
    """A likely intended domain for ``domain``, or ``None`` when it looks deliberate."""
    if domain in free_providers():
        return None
    for candidate in POPULAR_DOMAINS:
        if _within_one_edit(domain, candidate):
            return candidate
    return None


def did_you_mean(address: str) -> str | None:
    local, _, domain = address.rpartition("@")
    suggestion = suggest_domain(domain)
    return f"{local}@{suggestion}" if suggestion else None
