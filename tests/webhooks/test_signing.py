"""Signatures are the Standard Webhooks ones (the reference implementation verifies ours, and
so do the documented standard-library check and the SDK helper); secrets are sealed at rest;
the address guard refuses what it must."""

from __future__ import annotations

import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from apexverify.client import WebhookVerificationError as SdkError
from apexverify.client import verify_webhook
from apexverify.webhooks import addresses, signing
from apexverify.webhooks.errors import InvalidEndpoint
from tests.webhooks.receiver import verify

pytestmark = pytest.mark.fast

BODY = b'{"type":"batch.verification_done","data":{"batch_uuid":"b"}}'


def signed(secret: str, body: bytes = BODY, at: int | None = None) -> dict[str, str]:
    return signing.headers(secret, "msg_1", int(time.time()) if at is None else at, body)


def test_the_reference_implementation_verifies_our_signature() -> None:
    secret = signing.new_secret()
    headers = signed(secret)
    assert Webhook(secret).verify(BODY, headers) == {
        "type": "batch.verification_done",
        "data": {"batch_uuid": "b"},
    }
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY + b" ", headers)


def test_the_documented_stdlib_check_and_the_sdk_helper() -> None:
    secret = signing.new_secret()
    headers = signed(secret)
    assert verify(secret, headers, BODY)
    assert not verify(secret, {**headers, "webhook-id": "msg_2"}, BODY)
    assert verify_webhook(BODY, headers, secret)["data"] == {"batch_uuid": "b"}
    upper = {k.upper(): v for k, v in headers.items()}  # header names are case-insensitive
    assert verify_webhook(BODY.decode(), upper, secret)["type"] == "batch.verification_done"
    with pytest.raises(SdkError, match="no signature"):
        verify_webhook(BODY, headers, signing.new_secret())
    with pytest.raises(SdkError, match="too far"):
        verify_webhook(BODY, signed(secret, at=int(time.time()) - 3600), secret)
    # Several signatures (a rotated secret): any v1 one that matches is enough.
    several = {**headers, "webhook-signature": "v1,bm9wZQ== " + headers["webhook-signature"]}
    assert verify_webhook(BODY, several, secret)
    with pytest.raises(SdkError, match="missing header webhook-id"):
        verify_webhook(BODY, {}, secret)


def test_a_sealed_secret_opens_only_with_its_key_and_its_endpoint() -> None:
    secret, key = signing.new_secret(), b"k" * 32
    sealed = signing.seal(key, "endpoint-1", secret)
    assert secret not in sealed
    assert signing.unseal(key, "endpoint-1", sealed) == secret
    with pytest.raises(signing.SealBroken):
        signing.unseal(b"x" * 32, "endpoint-1", sealed)  # the server's key changed
    with pytest.raises(signing.SealBroken):
        signing.unseal(key, "endpoint-2", sealed)  # copied onto another endpoint


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8080/x", False),
        ("http://localhost/x", False),
        ("https://192.168.1.10/x", False),
        ("https://[fd00::1]/x", False),
        ("https://100.64.0.1/x", False),  # carrier-grade NAT: not globally routable
        ("https://8.8.8.8/x", True),
        ("https://hooks.invalid/x", True),  # not resolvable now: checked at each attempt
    ],
)
def test_the_private_address_guard(url: str, allowed: bool) -> None:
    if allowed:
        assert addresses.check_registration(url, allow_private=False).url == url
    else:
        with pytest.raises(InvalidEndpoint, match="is refused"):
            addresses.check_registration(url, allow_private=False)
        assert addresses.check_registration(url, allow_private=True).url == url


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "https://",
        "https://a b.example/x",
        "https://exämple.com/x",
        "https://example.com:0/x",
        "https://example.com:99999/x",
        "https://-bad-.example/x",
        "https://example.com/x#part",
        "https://u:p@example.com/x",
    ],
)
def test_urls_that_are_not_http_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidEndpoint):
        addresses.check_registration(url, allow_private=True)


async def test_a_delivery_rechecks_the_address() -> None:
    target = addresses.parse("http://127.0.0.1:9/x")
    with pytest.raises(addresses.AddressRefused, match="loopback"):
        await addresses.delivery_address(target, allow_private=False)
    assert await addresses.delivery_address(target, allow_private=True) == "127.0.0.1"
