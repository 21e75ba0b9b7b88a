"""Provider exceptions as data: ``providers.json`` maps MX host suffixes to reply overrides
and to the limits the engine starts from for their MX hosts (``limits``: at most
``max_connections`` at once, ``rcpt_per_connection`` recipients per transaction,
``recipients_per_minute``; each optional, the settings' values otherwise). What the engine
learns from the replies (``limits.py``) only ever lowers them; a provider entry also names
the breaker that a block by one of its MX hosts opens for all of them (``breaker.py``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files

from .replies import ReplyKind


@dataclass(frozen=True)
class Provider:
    name: str
    mx_suffixes: tuple[str, ...]
    enhanced_overrides: dict[str, ReplyKind] = field(default_factory=dict)
    max_connections: int | None = None
    rcpt_per_connection: int | None = None
    recipients_per_minute: float | None = None


@cache
def providers() -> tuple[Provider, ...]:
    raw = json.loads(files(__package__).joinpath("providers.json").read_text(encoding="utf-8"))
    return tuple(
        Provider(
            name=entry["name"],
            mx_suffixes=tuple(s.lower().strip(".") for s in entry["mx_suffixes"]),
            enhanced_overrides={
                code: ReplyKind(kind) for code, kind in entry["enhanced_overrides"].items()
            },
            max_connections=entry.get("limits", {}).get("max_connections"),
            rcpt_per_connection=entry.get("limits", {}).get("rcpt_per_connection"),
            recipients_per_minute=entry.get("limits", {}).get("recipients_per_minute"),
        )
        for entry in raw["providers"]
    )


def provider_for_mx(mx_host: str) -> Provider | None:
    """The provider whose MX suffix matches ``mx_host`` on a label boundary."""
    host = mx_host.lower().rstrip(".")
    for provider in providers():
        for suffix in provider.mx_suffixes:
            if host == suffix or host.endswith("." + suffix):
                return provider
    return None
