"""Unit checks: reply classification, lists, typos, safety, name-server parsing, catch-all."""

from __future__ import annotations

import pytest

from apexverify.verify.email.catchall import CatchAllCache, random_local_part, state_from_reply
from apexverify.verify.email.lists import (
    free_providers,
    is_disposable,
    is_free,
    is_role,
    role_accounts,
)
from apexverify.verify.email.mx import parse_nameserver
from apexverify.verify.email.replies import Reply, ReplyKind, classify
from apexverify.verify.email.safety import refusal_reason
from apexverify.verify.email.typo import did_you_mean

K = ReplyKind


@pytest.mark.parametrize(
    ("code", "message", "kind", "enhanced"),
    [
        (250, "2.1.5 OK", K.ACCEPTED, "2.1.5"),
        (251, "User not local; will forward", K.ACCEPTED, None),
        (252, "2.1.5 Cannot VRFY user", K.CANNOT_VERIFY, "2.1.5"),
        (550, "5.1.1 <x@y>: Recipient address rejected: User unknown", K.USER_UNKNOWN, "5.1.1"),
        (550, "5.1.0 Address rejected", K.USER_UNKNOWN, "5.1.0"),
        (553, "5.1.3 Bad recipient address syntax", K.USER_UNKNOWN, "5.1.3"),
        (550, "5.2.1 Mailbox disabled", K.USER_UNKNOWN, "5.2.1"),
        (551, "User not local", K.USER_UNKNOWN, None),
        (550, "5.1.10 Recipient address has null MX", K.BAD_DOMAIN, "5.1.10"),
        (552, "5.2.2 Mailbox full", K.MAILBOX_FULL, "5.2.2"),
        (552, "Requested mail action aborted: exceeded storage", K.MAILBOX_FULL, None),
        (452, "4.2.2 Mailbox full", K.TEMPORARY, "4.2.2"),
        (451, "4.7.1 Greylisted", K.TEMPORARY, "4.7.1"),
        (450, "Try later", K.TEMPORARY, None),
        (421, "4.3.2 Service shutting down", K.TEMPORARY, "4.3.2"),
        (550, "5.7.1 Relaying denied", K.POLICY, "5.7.1"),
        (550, "5.7.606 Access denied, banned sending IP", K.POLICY, "5.7.606"),
        (554, "Transaction failed", K.POLICY, None),
        (550, "No such user here", K.UNSPECIFIED, None),
        (550, "User unknown 5.1.1", K.UNSPECIFIED, None),  # enhanced code must lead the text
        (550, "4.1.1 class mismatch is ignored", K.UNSPECIFIED, None),
        (501, "5.5.4 Syntax error in parameters", K.PROTOCOL, "5.5.4"),
        (503, "Bad sequence of commands", K.PROTOCOL, None),
        (553, "5.6.7 Non-ASCII addresses not permitted", K.PROTOCOL, "5.6.7"),
    ],
)
def test_classify(code: int, message: str, kind: ReplyKind, enhanced: str | None) -> None:
    reply = Reply.parse(code, message)
    assert reply.enhanced == enhanced
    assert classify(reply) is kind
    assert reply.text == f"{code} {message}"


def test_classify_never_reads_words() -> None:
    # The same words with different codes give different kinds; no code, no "user unknown".
    assert classify(Reply.parse(550, "user unknown")) is K.UNSPECIFIED
    assert classify(Reply.parse(250, "user unknown")) is K.ACCEPTED


def test_lists_load_and_match() -> None:
    assert len(role_accounts()) > 50
    assert len(free_providers()) > 50
    assert is_free("gmail.com")
    assert not is_free("acme-corp.com")
    assert is_role("info")
    assert is_role("Support+tickets")
    assert not is_role("alice")
    assert is_disposable("mailinator.com")
    assert is_disposable("sub.mailinator.com")
    assert not is_disposable("gmail.com")
    assert not is_disposable("com")


@pytest.mark.parametrize(
    ("address", "suggestion"),
    [
        ("a@gmial.com", "a@gmail.com"),
        ("a@gmail.con", "a@gmail.com"),
        ("a@gmai.com", "a@gmail.com"),
        ("a@hotmial.com", "a@hotmail.com"),
        ("a@yaho.com", "a@yahoo.com"),
        ("a@outlok.com", "a@outlook.com"),
        ("a@gmail.com", None),
        ("a@gmx.com", None),  # a real provider, not a typo of gmail
        ("a@acme.com", None),
    ],
)
def test_did_you_mean(address: str, suggestion: str | None) -> None:
    assert did_you_mean(address) == suggestion


@pytest.mark.parametrize(
    ("address", "refused_by_default"),
    [
        ("8.8.8.8", False),
        ("2001:4860:4860::8888", False),
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),
        ("100.64.0.1", True),
        ("0.0.0.0", True),
        ("224.0.0.1", True),
        ("240.0.0.1", True),
        ("::1", True),
        ("fe80::1", True),
        ("fc00::1", True),
        ("::ffff:10.0.0.1", True),
        ("not-an-ip", True),
    ],
)
def test_safety(address: str, refused_by_default: bool) -> None:
    assert (refusal_reason(address, allow_private=False) is not None) is refused_by_default


def test_safety_switch_allows_private_but_never_multicast() -> None:
    assert refusal_reason("10.1.2.3", allow_private=True) is None
    assert refusal_reason("127.0.0.5", allow_private=True) is None
    assert refusal_reason("224.0.0.1", allow_private=True) is not None
    assert refusal_reason("0.0.0.0", allow_private=True) is not None


def test_parse_nameserver() -> None:
    assert parse_nameserver("127.0.0.1") == ("127.0.0.1", 53)
    assert parse_nameserver("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_nameserver("[::1]:5353") == ("::1", 5353)
    assert parse_nameserver("::1") == ("::1", 53)


def test_catch_all_cache() -> None:
    cache = CatchAllCache()
    probe = cache.probe_address("x.com")
    assert probe == cache.probe_address("x.com")  # stable across retries
    assert probe != cache.probe_address("y.com")
    assert len(random_local_part()) == 20
    assert cache.needs_probe("x.com")
    cache.record("x.com", state_from_reply(K.TEMPORARY))
    assert cache.needs_probe("x.com")
    cache.record("x.com", state_from_reply(K.USER_UNKNOWN))
    assert cache.state("x.com") == "no"
    assert not cache.needs_probe("x.com")
    cache.record("y.com", state_from_reply(K.ACCEPTED))
    assert cache.state("y.com") == "yes"
    assert state_from_reply(K.POLICY) == "unknown"
