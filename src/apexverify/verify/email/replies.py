"""Classify SMTP replies by basic (RFC 5321) and enhanced (RFC 3463) status codes.

Reply *text* is never searched for words: servers word things in every language. The raw
reply is kept on :class:`Reply` so it can be exported (``smtp_reply``) and audited.

Provider-specific meanings of codes (Microsoft 365's ``5.4.1`` for an unknown recipient under
Directory-Based Edge Blocking) come from ``providers.json`` through :func:`classify`'s
``overrides`` argument, not from code branches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

_ENHANCED = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")


class ReplyKind(StrEnum):
    ACCEPTED = "accepted"  # 250/251: the server will deliver to this mailbox
    CANNOT_VERIFY = "cannot_verify"  # 252: accepted without verifying the mailbox
    USER_UNKNOWN = "user_unknown"  # 5.1.1 and friends: the mailbox does not exist
    BAD_DOMAIN = "bad_domain"  # 5.1.2 / 5.1.10: the domain does not take mail here
    MAILBOX_FULL = "mailbox_full"  # 552 / x.2.2: exists but over quota
    POLICY = "policy"  # x.7.x, 554 ...: the server refuses *us*, says nothing on the mailbox
    TEMPORARY = "temporary"  # 4xx: greylisting, rate limits, local trouble
    UNSPECIFIED = "unspecified"  # other 5xx, e.g. a bare 550 without enhanced code
    PROTOCOL = "protocol"  # 500/501/502/503/504/555: our command was not understood


@dataclass(frozen=True)
class Reply:
    code: int
    message: str
    enhanced: str | None = None  # "5.1.1" when the text starts with a matching RFC 3463 code

    @classmethod
    def parse(cls, code: int, message: str) -> Reply:
        enhanced = None
        match = _ENHANCED.match(message.lstrip())
        # RFC 3463: the enhanced class must agree with the basic code's first digit.
        if match and match.group(1) == str(code)[0]:
            enhanced = ".".join(match.groups())
        return cls(code=code, message=message, enhanced=enhanced)

    @property
    def text(self) -> str:
        """The reply as it came over the wire (multi-line replies joined by newlines)."""
        return f"{self.code} {self.message}"


# Enhanced subject.detail (class-independent) -> kind, for permanent (5.x.x) replies.
_PERMANENT_ENHANCED: dict[str, ReplyKind] = {
    "1.1": ReplyKind.USER_UNKNOWN,  # bad destination mailbox address
    "1.0": ReplyKind.USER_UNKNOWN,  # other address status (used for "no such user" often)
    "1.3": ReplyKind.USER_UNKNOWN,  # bad destination mailbox address syntax
    "1.6": ReplyKind.USER_UNKNOWN,  # destination mailbox has moved, no forwarding address
    "2.1": ReplyKind.USER_UNKNOWN,  # mailbox disabled, not accepting messages
    "1.2": ReplyKind.BAD_DOMAIN,  # bad destination system address
    "1.10": ReplyKind.BAD_DOMAIN,  # recipient address has null MX (RFC 7505)
    "2.2": ReplyKind.MAILBOX_FULL,  # mailbox full
    "5.1": ReplyKind.PROTOCOL,  # invalid command
    "5.2": ReplyKind.PROTOCOL,  # syntax error
    "5.4": ReplyKind.PROTOCOL,  # invalid command arguments
    "5.3": ReplyKind.POLICY,  # too many recipients (permanent form)
    "6.7": ReplyKind.PROTOCOL,  # non-ASCII address not permitted (RFC 6531)
}

# Basic codes used when no (or no matching) enhanced code is present.
_BASIC: dict[int, ReplyKind] = {
    250: ReplyKind.ACCEPTED,
    251: ReplyKind.ACCEPTED,
    252: ReplyKind.CANNOT_VERIFY,
    500: ReplyKind.PROTOCOL,
    501: ReplyKind.PROTOCOL,
    502: ReplyKind.PROTOCOL,
    503: ReplyKind.PROTOCOL,
    504: ReplyKind.PROTOCOL,
    555: ReplyKind.PROTOCOL,
    550: ReplyKind.UNSPECIFIED,  # "mailbox unavailable": not found, no access OR policy
    551: ReplyKind.USER_UNKNOWN,  # user not local (and no forwarding offered)
    552: ReplyKind.MAILBOX_FULL,  # exceeded storage allocation
    553: ReplyKind.UNSPECIFIED,  # mailbox name not allowed
    554: ReplyKind.POLICY,  # transaction failed: nearly always a block of the client
    521: ReplyKind.POLICY,  # host does not accept mail (RFC 7504) at this stage
    556: ReplyKind.BAD_DOMAIN,  # domain does not accept mail (RFC 7504)
}


def classify(reply: Reply, overrides: dict[str, ReplyKind] | None = None) -> ReplyKind:
    """Kind of an RCPT (or MAIL/greeting) reply.

    ``overrides`` maps full enhanced codes ("5.4.1") to kinds for the MX's provider; they win
    over the generic tables because a provider documents its own use of a code.
    """
    if overrides and reply.enhanced in overrides:
        return overrides[reply.enhanced]
    if 200 <= reply.code < 300:
        return _BASIC.get(reply.code, ReplyKind.ACCEPTED)
    if 400 <= reply.code < 500:
        return ReplyKind.TEMPORARY
    if reply.code < 500 or reply.code >= 600:
        return ReplyKind.PROTOCOL
    if reply.enhanced is not None:
        subject_detail = reply.enhanced.split(".", 1)[1]
        if subject_detail.startswith("7."):
            return ReplyKind.POLICY  # security or policy status: about us, not the mailbox
        kind = _PERMANENT_ENHANCED.get(subject_detail)
        if kind is not None:
            return kind
        if subject_detail.startswith("1."):
            return ReplyKind.UNSPECIFIED
    return _BASIC.get(reply.code, ReplyKind.UNSPECIFIED)


# -- limits and blocks (docs/politeness.md) -------------------------------------------------


class Limit(StrEnum):
    """A limit of the server on us, read from a reply's codes (never its text)."""

    RECIPIENTS = "recipients"  # too many recipients on this connection or transaction
    RATE = "rate"  # too many recipients per unit of time (only with context: rate_candidate)
    CONNECTIONS = "connections"  # too many connections (or connections per unit of time)


def _subject_detail(reply: Reply) -> str | None:
    return reply.enhanced.split(".", 1)[1] if reply.enhanced else None


def recipients_limit(reply: Reply) -> bool:
    """A RCPT reply that says "no more recipients here", not anything about the recipient:

    * any enhanced ``x.5.3`` (too many recipients, RFC 3463), whatever the basic code;
    * ``452`` (RFC 5321 4.5.3.1.10: the code for "too many recipients"), unless its enhanced
      code is about the mailbox or address (``4.2.x`` mailbox over quota, ``4.1.x``);
    * ``421`` (closing the connection: Postfix's "too many errors", a session cut short).
    """
    detail = _subject_detail(reply)
    if detail == "5.3":
        return True
    if reply.code == 452:
        return detail is None or not detail.startswith(("1.", "2."))
    return reply.code == 421


def rate_candidate(reply: Reply) -> bool:
    """``450`` with an enhanced ``4.7.x``: Postfix's anvil limits ("450 4.7.1 too many
    recipients from ...", "too much mail from ..."). Greylisting uses the same codes, so the
    engine reads it as a rate limit only after the connection got other, definitive RCPT
    answers first (a rate limit lets the first recipients through, a greylister refuses each
    new one from the start) or when the MX rate-limited us already. ``451 4.7.x`` is left to
    greylisting (milter-greylist, greylistd)."""
    detail = _subject_detail(reply)
    return reply.code == 450 and detail is not None and detail.startswith("7.")


def connections_limit(reply: Reply) -> bool:
    """A ``421`` before any RCPT (greeting, EHLO, MAIL): "too many connections" (Postfix's
    concurrency and connection-rate limits) or a server shedding load. Either way: fewer and
    later connections to that MX."""
    return reply.code == 421


def session_block(reply: Reply) -> bool:
    """A refusal of us before any RCPT (greeting, EHLO/HELO, MAIL): a ``554`` (the banner
    of a blocked client, RFC 5321 3.1) or any ``5.7.x`` (security or policy status)."""
    detail = _subject_detail(reply)
    return reply.code == 554 or (reply.code >= 500 and detail is not None and detail[:2] == "7.")


def rcpt_block(reply: Reply) -> bool:
    """A RCPT refusal by policy (``5.7.x``). One alone may be about that recipient (a
    restricted group refusing outside senders); the engine counts a block when two come in a
    row on a connection that accepted no recipient."""
    detail = _subject_detail(reply)
    return reply.code >= 500 and detail is not None and detail[:2] == "7."
