"""Provider exceptions as data: ``providers.json`` maps MX host suffixes to reply overrides."""

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
