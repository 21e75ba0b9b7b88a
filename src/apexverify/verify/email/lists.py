"""Domain and local-part lists: disposable domains, free providers, role accounts.

Disposable domains come from the ``disposable-email-domains`` package; the free-provider and
role-account lists are plain-text data files shipped beside this module (their sources are
named in their header comments), so updating them needs no code change.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from disposable_email_domains import blocklist as _DISPOSABLE


def _load(name: str) -> frozenset[str]:
    text = files(__package__).joinpath(name).read_text(encoding="utf-8")
    entries = (line.split("#", 1)[0].strip().lower() for line in text.splitlines())
    return frozenset(entry for entry in entries if entry)


@cache
def free_providers() -> frozenset[str]:
    return _load("free_providers.txt")


@cache
def role_accounts() -> frozenset[str]:
    return _load("role_accounts.txt")


def is_disposable(domain: str) -> bool:
    """True when ``domain`` or any parent domain is on the disposable list.

    Walking the parents matches at the registrable domain without a public-suffix list:
    ``sub.mailinator.com`` is disposable because ``mailinator.com`` is; a bare TLD is never on
    the list, so walking up to it is harmless.
    """
    candidate = domain
    while True:
        if candidate in _DISPOSABLE:
            return True
        _, dot, candidate = candidate.partition(".")
        if not dot:
            return False


def is_free(domain: str) -> bool:
    return domain in free_providers()


def is_role(local: str) -> bool:
    """Role mailbox check on the local part, ignoring case and any ``+tag`` sub-address."""
    base = local.split("+", 1)[0].lower()
    return base in role_accounts()
