"""The contract every verification engine implements.

An engine receives *normalized* values (emails with a lower-case IDNA domain, phones in
E.164), verifies them however it likes (grouping, concurrency, network look-ups) and returns
one outcome per item, in the same order. An outcome is either a final result or a
:class:`Retry` that asks the caller to try that item again later (greylisting, provider rate
limits): the batch runner stores the retry time in the database, so a retry survives restarts.

An engine that cannot work at all (the provider refuses its credentials, the account is
suspended) raises :class:`EngineUnavailable`; any other exception is transient.

Engines import nothing from the web or database layers. Callers get engines from a
:class:`VerifierFactory` (``verify/registry.py``: :class:`~.registry.EngineFactory`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import Field, dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

RecordType = Literal["email", "phone"]
Verdict = Literal["valid", "wrong", "unknown"]

EMAIL_QUALITIES = ("good", "bad", "risky", "unknown")
EMAIL_RESULTS = ("ok", "invalid", "error", "unknown")
PHONE_TYPES = (
    "mobile",
    "landline",
    "mobile_or_landline",
    "voip",
    "toll_free",
    "premium",
    "shared_cost",
    "pager",
    "voicemail_only",
    "bad_format",
    "unknown",
)
PHONE_STATUSES = (
    "live",
    "dead",
    "absent_subscriber",
    "no_teleservice_provisioned",
    "not_available_network_only",
    "no_coverage",
    "not_applicable",
    "inconclusive",
)


def _verdict(valid: bool, wrong: bool) -> Verdict:
    if valid:
        return "valid"
    if wrong:
        return "wrong"
    return "unknown"


class _ResultMixin:
    """Verdict and serialization shared by the result types."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]  # every subclass is a dataclass
    valid: bool
    wrong: bool

    @property
    def verdict(self) -> Verdict:
        return _verdict(self.valid, self.wrong)

    def to_dict(self) -> dict[str, Any]:
        """The documented fields in order, then the extras (a shallow copy: results hold
        plain values, and this runs once per verified record)."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "extra"}
        data.update(getattr(self, "extra", {}))
        return data


@dataclass
class EmailResult(_ResultMixin):
    """The ten documented email fields, plus engine-specific ``extra`` fields.

    ``extra`` is appended after the documented fields in exports (for example
    ``did_you_mean``, ``smtp_code``, ``smtp_reply``, ``mx_host``).
    """

    valid: bool
    wrong: bool
    unknown: bool
    quality: str
    result: str
    is_syntax_error: bool = False
    is_free: bool = False
    is_role: bool = False
    is_disposable: bool = False
    is_catch_all: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def syntax_error(cls) -> EmailResult:
        return cls(
            valid=False,
            wrong=True,
            unknown=False,
            quality="bad",
            result="invalid",
            is_syntax_error=True,
        )


@dataclass
class PhoneResult(_ResultMixin):
    """The documented phone fields, plus engine-specific ``extra`` fields."""

    valid: bool
    wrong: bool
    unknown: bool
    type: str
    status: str
    is_syntax_error: bool = False
    is_ported: bool = False
    current_network_mcc: str | None = None
    current_network_mnc: str | None = None
    operator: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def syntax_error(cls) -> PhoneResult:
        return cls(
            valid=False,
            wrong=True,
            unknown=False,
            type="bad_format",
            status="not_applicable",
            is_syntax_error=True,
        )


Result = EmailResult | PhoneResult


@dataclass(frozen=True)
class Retry:
    """Try this item again in ``after_seconds`` (greylisting, rate limits, transient errors).

    ``not_before`` (epoch seconds), when set, is when the retry is due, fixed by the engine
    when the reason arose (the greylisting ``4xx`` arrived): callers use it rather than
    ``after_seconds`` counted from when they read the outcome, which may be much later
    (a chunk waits for its slowest domain). ``consumes_attempt`` is False for an item the
    engine did not probe at all (it held it back to respect a server's learned limits): its
    attempt count stays as it was."""

    after_seconds: float
    reason: str = ""
    not_before: float | None = None
    consumes_attempt: bool = True

    def due_at(self, now: float) -> float:
        """When the retry is due (epoch seconds), for an outcome read at ``now``."""
        if self.not_before is not None:
            return self.not_before
        return now + self.after_seconds


Outcome = Result | Retry


@dataclass(frozen=True)
class VerifyItem:
    """One normalized value; ``attempt`` counts from 1 and grows with each :class:`Retry`."""

    value: str
    attempt: int = 1


@dataclass(frozen=True)
class VerifyContext:
    target_country: str = "US"
    max_attempts: int = 3


class EngineUnavailable(Exception):
    """The engine cannot work at all (credentials refused, account suspended at the
    provider); retrying will not help.

    Raised by :meth:`Verifier.verify_many` for the whole call, never for one item. The message
    names the engine and the cause, never a credential.
    """


class Verifier(ABC):
    """A verification engine for one record type.

    ``verify_many`` raises :class:`EngineUnavailable` when the engine cannot work at all;
    any other exception it raises is transient (a bug, a network or provider incident): the
    caller may try the same items again later.
    """

    record_type: RecordType

    @abstractmethod
    async def verify_many(
        self, items: Sequence[VerifyItem], context: VerifyContext
    ) -> list[Outcome]:
        """Return one outcome per item, in order. On the last allowed attempt
        (``item.attempt >= context.max_attempts``) an engine must return a final result
        (``unknown`` when still inconclusive), never a :class:`Retry`, with two exceptions:
        while one of its :meth:`health` checks fails, evidence that the failing environment
        may have produced (an NXDOMAIN from a lying resolver) is deferred with a
        :class:`Retry` whatever the attempt; and an item the engine held back unprobed (a
        :class:`Retry` with ``consumes_attempt=False``) keeps its attempt. Callers bound such
        waits themselves."""

    # Chunks of a batch are cut by mail domain (many addresses of few domains per chunk, so
    # connections are reused); engines that do not group by domain say False.
    groups_by_domain: bool = False

    def chunk_size(self, default: int) -> int:
        """How many items one ``verify_many`` call of a batch should get (a provider that
        batches its look-ups wants whole batches)."""
        return default

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most engines hold nothing
        """Release connections and caches."""

    def health(self) -> list[HealthCheck]:
        """The last known state of what the engine depends on (DNS, outbound SMTP), without
        any network I/O; engines that depend on nothing they can measure report none."""
        return []

    async def check_health(self) -> list[HealthCheck]:
        """Like :meth:`health`, after refreshing checks that are stale (may do I/O)."""
        return self.health()


@dataclass(frozen=True)
class HealthCheck:
    """One measured dependency of an engine: ``ok`` or not, and why in one sentence.

    ``details`` holds plain JSON values (figures behind the verdict); ``affects_readiness``
    says whether a failure should take the process out of service (``/readyz`` 503)."""

    name: str
    ok: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)
    affects_readiness: bool = True


@runtime_checkable
class HealthReporter(Protocol):
    """What ``/readyz`` and ``/metrics`` ask of a :class:`VerifierFactory` that measures the
    environment of its engines (:class:`~.registry.EngineFactory`; test fakes need not)."""

    def health(self) -> list[HealthCheck]: ...

    async def check_health(self) -> list[HealthCheck]: ...


class VerifierFactory(Protocol):
    """Builds the engine for a record type; sandbox accounts get the sandbox engine. The
    factory owns what it builds: callers share the engine and never close it."""

    def build(self, record_type: RecordType, *, sandbox: bool) -> Verifier: ...

    async def aclose(self) -> None:
        """Close every engine built (at the end of the process)."""


def syntax_error_result(record_type: RecordType) -> Result:
    return EmailResult.syntax_error() if record_type == "email" else PhoneResult.syntax_error()


def inconclusive_result(record_type: RecordType, evidence: str, reason: str) -> Result:
    """The ``unknown`` result of a value that got no conclusive answer (a time budget ran
    out, the batch was cancelled or stalled): the documented fields say nothing, the extras
    say why."""
    extra = {"evidence": evidence, "reason": reason}
    if record_type == "email":
        return EmailResult(
            valid=False, wrong=False, unknown=True, quality="unknown", result="unknown", extra=extra
        )
    return PhoneResult(
        valid=False, wrong=False, unknown=True, type="unknown", status="inconclusive", extra=extra
    )
