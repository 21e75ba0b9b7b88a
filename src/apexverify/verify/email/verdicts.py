"""From evidence to the ten documented fields: the single verdict table.

``RULES`` is the table printed in docs/results.md ("## Email"); the lab tests read that
document and check that every row is what the engine actually returns. ``wrong`` is only
ever set on hard evidence (syntax, DNS saying the domain has no mail, the server saying the
mailbox does not exist); whatever is inconclusive is ``unknown``.

``DEFERRED_WHILE`` is the second table of that document ("Unhealthy environment"): evidence
that is only hard while the environment that produced it is healthy, deferred with a
:class:`Retry` on every attempt while the named check fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..base import EmailResult, Outcome, Retry


class Evidence(StrEnum):
    SYNTAX_ERROR = "syntax_error"
    NXDOMAIN = "nxdomain"
    NO_MAIL_HOST = "no_mail_host"
    NULL_MX = "null_mx"
    DNS_ERROR = "dns_error"
    MX_REFUSED = "mx_refused"
    DISPOSABLE = "disposable"
    ACCEPTED = "accepted"
    CATCH_ALL = "catch_all"
    USER_UNKNOWN = "user_unknown"
    BAD_DOMAIN = "bad_domain"
    MAILBOX_FULL = "mailbox_full"
    TEMPORARY = "temporary"
    TIMEOUT = "timeout"
    DROPPED = "dropped"
    CONNECT_FAILED = "connect_failed"
    POLICY = "policy"
    UNSPECIFIED = "unspecified"
    CANNOT_VERIFY = "cannot_verify"
    PROTOCOL = "protocol"
    SMTPUTF8_UNSUPPORTED = "smtputf8_unsupported"
    ENGINE_ERROR = "engine_error"
    BLOCKED = "blocked"  # the MX (or its provider) refused us by policy: breaker open


@dataclass(frozen=True)
class Rule:
    valid: bool
    wrong: bool
    unknown: bool
    quality: str
    result: str
    retry: bool = False  # ask the runner to re-probe later unless this is the last attempt


_WRONG = Rule(False, True, False, "bad", "invalid")
_ERROR = Rule(False, False, True, "unknown", "error")
_ERROR_RETRY = Rule(False, False, True, "unknown", "error", retry=True)

RULES: dict[Evidence, Rule] = {
    Evidence.SYNTAX_ERROR: _WRONG,
    Evidence.NXDOMAIN: _WRONG,
    Evidence.NO_MAIL_HOST: _WRONG,
    Evidence.NULL_MX: _WRONG,
    Evidence.DNS_ERROR: _ERROR_RETRY,
    Evidence.MX_REFUSED: _ERROR,
    Evidence.DISPOSABLE: Rule(False, False, True, "risky", "ok"),
    Evidence.ACCEPTED: Rule(True, False, False, "good", "ok"),
    Evidence.CATCH_ALL: Rule(False, False, True, "risky", "ok"),
    Evidence.USER_UNKNOWN: _WRONG,
    Evidence.BAD_DOMAIN: _WRONG,
    Evidence.MAILBOX_FULL: Rule(False, False, True, "risky", "unknown"),
    Evidence.TEMPORARY: Rule(False, False, True, "unknown", "unknown", retry=True),
    Evidence.TIMEOUT: _ERROR_RETRY,
    Evidence.DROPPED: _ERROR_RETRY,
    Evidence.CONNECT_FAILED: _ERROR_RETRY,
    Evidence.POLICY: _ERROR,
    Evidence.UNSPECIFIED: Rule(False, False, True, "unknown", "unknown"),
    Evidence.CANNOT_VERIFY: Rule(False, False, True, "unknown", "unknown"),
    Evidence.PROTOCOL: _ERROR,
    Evidence.SMTPUTF8_UNSUPPORTED: _ERROR,
    Evidence.ENGINE_ERROR: _ERROR_RETRY,
    Evidence.BLOCKED: _ERROR,
}


class Deferral(StrEnum):
    """Why evidence was deferred: the head of the :class:`Retry` reason (``POST /v1/unit``
    reports it as the ``evidence`` of its ``unknown`` answer)."""

    DNS_UNHEALTHY = "dns_unhealthy"
    SMTP_UNHEALTHY = "smtp_unhealthy"


# A resolver that lies answers NXDOMAIN (or nothing) for every name; a blocked port 25 makes
# every MX host look dead. The SMTP rows apply only when no MX host of the domain greeted.
DEFERRED_WHILE: dict[Evidence, Deferral] = {
    Evidence.NXDOMAIN: Deferral.DNS_UNHEALTHY,
    Evidence.NO_MAIL_HOST: Deferral.DNS_UNHEALTHY,
    Evidence.CONNECT_FAILED: Deferral.SMTP_UNHEALTHY,
    Evidence.TIMEOUT: Deferral.SMTP_UNHEALTHY,
    Evidence.DROPPED: Deferral.SMTP_UNHEALTHY,
}

_NOT_EVIDENCE = {
    Deferral.DNS_UNHEALTHY: "not treating {evidence} as evidence",
    Deferral.SMTP_UNHEALTHY: "not treating {evidence} as evidence (deferred, not decided)",
}
_LABELS = {Evidence.NXDOMAIN: "NXDOMAIN", Evidence.NO_MAIL_HOST: "'no mail host'"}


def defer(deferral: Deferral, evidence: Evidence, health_reason: str, retry_after: float) -> Retry:
    """The :class:`Retry` for ``evidence`` gathered while a health check fails (whatever the
    attempt): ``"dns_unhealthy: DNS looks unhealthy: ...; not treating nxdomain as
    evidence"``."""
    tail = _NOT_EVIDENCE[deferral].format(evidence=_LABELS.get(evidence, evidence.value))
    return Retry(after_seconds=retry_after, reason=f"{deferral.value}: {health_reason}; {tail}")


# The head of a held-back retry's reason (``POST /v1/unit`` reports it as the evidence).
HELD_BACK = "held_back"


def held_back(reason: str, not_before: float, now: float) -> Retry:
    """The :class:`Retry` of an address the engine did not probe, to respect its MX's
    learned limits: due when the MX will take it, and no attempt spent (whatever the
    attempt: it was never asked)."""
    return Retry(
        after_seconds=max(0.0, not_before - now),
        reason=f"{HELD_BACK}: {reason}",
        not_before=not_before,
        consumes_attempt=False,
    )


# The extra fields every engine result carries, in export order (None when not applicable).
EXTRA_FIELDS = (
    "did_you_mean",
    "evidence",
    "reason",
    "mx_host",
    "mx_provider",
    "smtp_code",
    "smtp_enhanced_code",
    "smtp_reply",
    "catch_all",
)


@dataclass(frozen=True)
class Flags:
    is_free: bool = False
    is_role: bool = False
    is_disposable: bool = False
    is_catch_all: bool = False


def decide(
    evidence: Evidence,
    flags: Flags,
    *,
    final: bool,
    retry_after: float,
    extra: dict[str, Any] | None = None,
    not_before: float | None = None,
) -> Outcome:
    """The outcome for one address: a :class:`Retry` or the final :class:`EmailResult`.
    ``not_before`` (epoch) is when a retry is due, fixed when the 4xx arrived."""
    rule = RULES[evidence]
    details = dict.fromkeys(EXTRA_FIELDS)
    details.update(extra or {})
    details["evidence"] = evidence.value
    if rule.retry and not final:
        reason = details.get("reason") or evidence.value
        return Retry(
            after_seconds=retry_after, reason=f"{evidence.value}: {reason}", not_before=not_before
        )
    quality = rule.quality
    if rule.valid and flags.is_role and quality == "good":
        # A role mailbox exists but reaches a team or a robot, not a person.
        quality = "risky"
    return EmailResult(
        valid=rule.valid,
        wrong=rule.wrong,
        unknown=rule.unknown,
        quality=quality,
        result=rule.result,
        is_syntax_error=evidence is Evidence.SYNTAX_ERROR,
        is_free=flags.is_free,
        is_role=flags.is_role,
        is_disposable=flags.is_disposable,
        is_catch_all=flags.is_catch_all,
        extra=details,
    )
