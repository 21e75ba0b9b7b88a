"""Catch-all detection: one random recipient per domain per engine instance.

The state is measured, never assumed from the provider (Reacher flags Microsoft 365 domains
as catch-all wholesale; with Directory-Based Edge Blocking they reject unknown recipients and
are not catch-all at all).
"""

from __future__ import annotations

import secrets
import string
from typing import Literal

from .replies import ReplyKind

CatchAll = Literal["yes", "no", "unknown"]

_ALPHABET = string.ascii_lowercase + string.digits


def random_local_part() -> str:
    """A local part no real person has: 20 random characters (about 100 bits)."""
    return secrets.choice(string.ascii_lowercase) + "".join(
        secrets.choice(_ALPHABET) for _ in range(19)
    )


def state_from_reply(kind: ReplyKind | None) -> CatchAll:
    """Catch-all state from the reply to the random recipient."""
    if kind is ReplyKind.ACCEPTED:
        return "yes"
    if kind in {ReplyKind.USER_UNKNOWN, ReplyKind.UNSPECIFIED, ReplyKind.BAD_DOMAIN}:
        # The server refused a mailbox that cannot exist: it checks recipients.
        return "no"
    return "unknown"  # greylisted, blocked, 252, no answer: ask again next time


class CatchAllCache:
    """Per-domain probe address and measured state for one engine instance (one batch)."""

    def __init__(self) -> None:
        self._probe_address: dict[str, str] = {}
        self._state: dict[str, CatchAll] = {}

    def probe_address(self, domain: str) -> str:
        # The same random address on every retry: a greylisting server then recognises it.
        address = self._probe_address.get(domain)
        if address is None:
            address = f"{random_local_part()}@{domain}"
            self._probe_address[domain] = address
        return address

    def state(self, domain: str) -> CatchAll:
        return self._state.get(domain, "unknown")

    def needs_probe(self, domain: str) -> bool:
        return self._state.get(domain, "unknown") == "unknown"

    def record(self, domain: str, state: CatchAll) -> None:
        if state != "unknown" or domain not in self._state:
            self._state[domain] = state
