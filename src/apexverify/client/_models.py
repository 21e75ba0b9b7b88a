"""Typed views of the API's JSON (the spec's shapes). Unknown fields never break a client:
each type keeps the JSON in ``raw`` and the keys it has no field for in ``extra``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._results import Stats

STATUSES = (
    "parsing_content",
    "ready_for_verification",
    "verification_ongoing",
    "verification_done",
    "internal_error",
)


@dataclass(frozen=True)
class Credits:
    email_credit: float
    phone_credit: float
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Credits:
        extra = {k: v for k, v in data.items() if k not in ("email_credit", "phone_credit")}
        return cls(float(data["email_credit"]), float(data["phone_credit"]), extra)


@dataclass(frozen=True)
class Upload:
    batch_uuid: str
    created_at: str


@dataclass(frozen=True)
class Cost:
    """``found_cost`` without the type prefix (``total_email_cost`` -> ``total``)."""

    total: float
    net: float
    cache_account_return: int
    cache_global_return: int

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Cost:
        def pick(suffix: str) -> int:
            return int(next(v for k, v in data.items() if k.endswith(suffix)))

        return cls(
            _total(data), _net(data), pick("cache_account_return"), pick("cache_global_return")
        )


def _total(data: dict[str, Any]) -> float:
    return float(next(v for k, v in data.items() if k.startswith("total_")))


def _net(data: dict[str, Any]) -> float:
    return float(next(v for k, v in data.items() if k.startswith("net_")))


@dataclass(frozen=True)
class Content:
    valid: int
    wrong: int
    duplicate: int

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Content:
        def pick(prefix: str) -> int:
            return int(next(v for k, v in data.items() if k.startswith(prefix)))

        return cls(pick("valid_"), pick("wrong_"), pick("duplicate_"))


@dataclass(frozen=True)
class BatchStatus:
    status: str
    content: Content | None = None
    cost: Cost | None = None
    stats: Stats | None = None
    # Progress: verified / to_verify while verification_ongoing; once verification_done,
    # both are the batch's total (the server sends no progress then).
    verified: int = 0
    to_verify: int = 0
    message: str | None = None
    # Extension fields of a finished batch: it was cancelled (``Client.cancel``), and when.
    cancelled: bool = False
    cancelled_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    _FIELDS = frozenset(
        {"status", "found_content", "found_cost", "stats", "progress", "message", "cancelled"}
        | {"cancelled_at"}
    )

    @classmethod
    def parse(cls, data: dict[str, Any]) -> BatchStatus:
        progress = data.get("progress") or {}
        stats = Stats.parse(data["stats"]) if isinstance(data.get("stats"), dict) else None
        verified = int(progress.get("verified", 0))
        to_verify = int(progress.get("total", 0))
        if data["status"] == "verification_done" and stats is not None:
            verified = to_verify = stats.total
        return cls(
            status=data["status"],
            content=Content.parse(data["found_content"]) if "found_content" in data else None,
            cost=Cost.parse(data["found_cost"]) if "found_cost" in data else None,
            stats=stats,
            verified=verified,
            to_verify=to_verify,
            message=data.get("message"),
            cancelled=bool(data.get("cancelled", False)),
            cancelled_at=data.get("cancelled_at"),
            raw=data,
        )

    @property
    def done(self) -> bool:
        return self.status == "verification_done"

    @property
    def extra(self) -> dict[str, Any]:
        """The keys of the answer this type has no field for (``stall``, ``started_at``...)."""
        return {k: v for k, v in self.raw.items() if k not in self._FIELDS}


@dataclass(frozen=True)
class Cancellation:
    """The answer of ``POST /v1/batch/{uuid}/cancel`` (an ApexVerify extension): how many
    records ended without being verified, and the batch's whole refund in credits."""

    records_cancelled: int
    refunded_credits: float
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Cancellation:
        return cls(int(data["records_cancelled"]), float(data["refunded_credits"]), data)


@dataclass(frozen=True)
class BatchSummary:
    batch_uuid: str
    name: str
    status: str
    type: str
    created_at: str
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: dict[str, Any]) -> BatchSummary:
        return cls(
            data["batch_uuid"], data["name"], data["status"], data["type"], data["created_at"], data
        )


@dataclass(frozen=True)
class BatchPage:
    batches: list[BatchSummary]
    total: int
    offset: int
    limit: int
