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
