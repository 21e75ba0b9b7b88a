"""Publishable keys over HTTP: CORS preflights and answers for their origins only, POST
/v1/unit as the one thing they can do, their own rate limits, and secret keys unchanged (no
CORS header, ever). The fast tier (in-process app), plus one real preflight over HTTP."""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from apexverify.accounts import service as accounts
from tests.support.fast import Lab, open_lab
from tests.support.server import LiveServer

SHOP = "https://shop.example"
OTHER = "https://evil.example"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type, x-api-key",
}
UNIT = {"type": "email", "unit": "valid@example.com"}
DOC = Path(__file__).parents[2] / "docs" / "browser.md"
CHROMIUM = shutil.which("chromium")


def publishable(lab: Lab, account_id: str, *origins: str) -> str:
    with lab.services.store.write() as session:
        new = accounts.create_key(
            session, account_id, "form", publishable=True, origins=list(origins or [SHOP])
        )
    return new.api_key


async def preflight(client: httpx.AsyncClient, origin: str, **extra: str) -> httpx.Response:
    return await client.options("/v1/unit", headers={"Origin": origin, **PREFLIGHT, **extra})


async def unit(
    client: httpx.AsyncClient, key: str | None, origin: str | None = SHOP
) -> httpx.Response:
    headers = {"X-Api-Key": key} if key else {}
    if origin:
        headers["Origin"] = origin
    return await client.post("/v1/unit", headers=headers, json=UNIT)


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


@pytest.fixture
async def sandbox(lab: Lab) -> tuple[str, str, str]:
    """(account id, secret key, publishable key for SHOP) of a sandbox account."""
    account_id, secret = lab.account(sandbox=True)
    return account_id, secret, publishable(lab, account_id)


async def test_a_preflight_from_an_allowed_origin_is_answered_for_that_origin(
    lab: Lab, sandbox: tuple[str, str, str]
) -> None:
    answer = await preflight(lab.client, SHOP)
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == SHOP
    assert answer.headers["access-control-allow-methods"] == "POST"
    allowed = {h.strip().lower() for h in answer.headers["access-control-allow-headers"].split(",")}
    assert allowed == {"content-type", "x-api-key"}
    assert int(answer.headers["access-control-max-age"]) > 0
    assert "Origin" in answer.headers["vary"]
    assert "access-control-allow-credentials" not in answer.headers


async def test_a_preflight_from_any_other_origin_is_refused_without_cors_headers(
    lab: Lab, sandbox: tuple[str, str, str]
) -> None:
    for origin in (OTHER, "null", SHOP + ":8443", "http://shop.example"):
        answer = await preflight(lab.client, origin)
        assert answer.status_code == 403, origin
        assert cors_headers(answer) == {}, origin
        assert "allowed origins" in answer.json()["message"]
    other_method = await preflight(lab.client, SHOP, **{"Access-Control-Request-Method": "GET"})
    assert other_method.status_code == 403
    assert cors_headers(other_method) == {}


async def test_a_revoked_key_no_longer_opens_its_origin(
    lab: Lab, sandbox: tuple[str, str, str]
) -> None:
    account_id, _secret, key = sandbox
    with lab.services.store.read() as session:
        found = accounts.find_key(session, key)
    assert found is not None
    with lab.services.store.write() as session:
        accounts.revoke_key(session, account_id, found[1].id)
    assert (await preflight(lab.client, SHOP)).status_code == 403
    refused = await unit(lab.client, key)
    assert refused.status_code == 401
    assert cors_headers(refused) == {}  # no active key lists SHOP any more


async def test_the_key_verifies_a_unit_from_its_origin_and_the_page_can_read_it(
    lab: Lab, sandbox: tuple[str, str, str]
) -> None:
    answer = await unit(lab.client, sandbox[2])
    assert answer.status_code == 200, answer.text
    assert answer.json()["valid"] is True
    assert answer.headers["access-control-allow-origin"] == SHOP
    assert "Retry-After" in answer.headers["access-control-expose-headers"]
    assert "Origin" in answer.headers["vary"]


async def test_without_an_origin_or_from_another_the_key_is_refused(
    lab: Lab, sandbox: tuple[str, str, str]
) -> None:
    key = sandbox[2]
    no_origin = await unit(lab.client, key, origin=None)
    assert no_origin.status_code == 403
    assert "no Origin header" in no_origin.json()["message"]
    other = await unit(lab.client, key, origin=OTHER)
    assert other.status_code == 403
    assert "not allowed from this origin" in other.json()["message"]
    assert cors_headers(other) == {}


async def test_an_origin_of_another_key_does_not_open_this_one(lab: Lab) -> None:
    first_account, _ = lab.account(sandbox=True)
    second_account, _ = lab.account(sandbox=True)
    first = publishable(lab, first_account, SHOP)
    publishable(lab, second_account, OTHER)
    assert (await preflight(lab.client, OTHER)).status_code == 204  # some key lists it
    answer = await unit(lab.client, first, origin=OTHER)
    assert answer.status_code == 403
    assert cors_headers(answer) == {}


async def test_the_key_can_do_nothing_but_unit_calls(tmp_path: Path) -> None:
    # More requests from one address than the default publishable bucket of an address.
    async with open_lab(tmp_path, publishable_rate_limit_per_ip_capacity=100) as lab:
        await _only_unit_calls(lab)


async def _only_unit_calls(lab: Lab) -> None:
    account_id, secret = lab.account(sandbox=True)
    key = publishable(lab, account_id)
    batch = await lab.upload(secret, "valid@example.com\n")
    attempts: list[tuple[str, str]] = [
        ("GET", "/v1/batch"),
        ("GET", f"/v1/batch/{batch}"),
        ("GET", f"/v1/batch/{batch}/details"),
        ("PUT", f"/v1/batch/{batch}"),
        ("POST", f"/v1/batch/{batch}"),  # launch
        ("POST", f"/v1/batch/{batch}/cancel"),
        ("GET", f"/v1/batch/{batch}/export"),
        ("DELETE", f"/v1/batch/{batch}"),
        ("GET", "/v1/account/credits"),
        ("GET", "/v1/account/keys"),
        ("POST", "/v1/account/keys"),
        ("DELETE", "/v1/account/keys/some-id"),
    ]
    for method, path in attempts:
        headers = {"X-Api-Key": key, "Origin": SHOP}
        body = {} if method in ("POST", "PUT") else None
        answer = await lab.client.request(method, path, headers=headers, json=body)
        assert answer.status_code == 403, (method, path, answer.text)
        assert "only call POST /v1/unit" in answer.json()["message"]
        assert cors_headers(answer) == {}
    # An upload is refused before its body is read, as for any key that cannot upload.
    upload = await lab.client.post(
        "/v1/batch",
        headers={"X-Api-Key": key},
        data={"name": "t", "type": "email"},
        files={"file": ("l.txt", b"a@example.com\n", "text/plain")},
    )
    assert upload.status_code == 401
    assert (await lab.get(secret, f"/v1/batch/{batch}")).status_code == 200  # still there


async def test_a_secret_key_gets_no_cors_header_even_from_an_allowed_origin(
    lab: Lab, sandbox: tuple[str, str, str]
) -> None:
    _account, secret, _key = sandbox
    answer = await unit(lab.client, secret, origin=SHOP)
    assert answer.status_code == 200  # working exactly as before
    assert cors_headers(answer) == {}
    assert "origin" not in answer.headers.get("vary", "").lower()
    credits = await lab.client.get(
        "/v1/account/credits", headers={"X-Api-Key": secret, "Origin": SHOP}
    )
    assert credits.status_code == 200
    assert cors_headers(credits) == {}


async def test_other_paths_keep_their_405_to_a_preflight(
    lab: Lab, sandbox: tuple[str, str, str]
) -> None:
    answer = await lab.client.options("/v1/batch", headers={"Origin": SHOP, **PREFLIGHT})
    assert answer.status_code == 405
    assert cors_headers(answer) == {}
    plain = await lab.client.options("/v1/unit")  # not a preflight: the route's 405
    assert plain.status_code == 405


async def test_a_mistyped_key_gets_a_401_the_page_can_read(
    lab: Lab, sandbox: tuple[str, str, str]
) -> None:
    answer = await unit(lab.client, sandbox[2] + "x")
    assert answer.status_code == 401
    assert answer.headers["access-control-allow-origin"] == SHOP
    elsewhere = await unit(lab.client, sandbox[2] + "x", origin=OTHER)
    assert cors_headers(elsewhere) == {}


@pytest.fixture
async def tight(tmp_path: Path) -> AsyncIterator[Lab]:
    """Publishable buckets of 2 per key and 3 per address that barely refill."""
    async with open_lab(
        tmp_path,
        publishable_rate_limit_capacity=2,
        publishable_rate_limit_refill_per_second=0.001,
        publishable_rate_limit_per_ip_capacity=3,
        publishable_rate_limit_per_ip_refill_per_second=0.001,
    ) as opened:
        yield opened


async def test_publishable_keys_have_their_own_smaller_bucket(tight: Lab) -> None:
    account_id, secret = tight.account(sandbox=True)
    key = publishable(tight, account_id)
    first, second, third = [await unit(tight.client, key) for _ in range(3)]
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.headers["x-ratelimit-limit"] == "2"
    assert third.status_code == 429
    assert int(third.headers["retry-after"]) >= 1
    # Readable by the page, so its script can wait Retry-After.
    assert third.headers["access-control-allow-origin"] == SHOP
    # The secret key of the same account, from the same address, is untouched.
    for _ in range(5):
        answer = await unit(tight.client, secret, origin=None)
        assert answer.status_code == 200
        assert answer.headers["x-ratelimit-limit"] == "180"


async def test_one_address_is_limited_across_publishable_keys(tight: Lab) -> None:
    account_id, _secret = tight.account(sandbox=True)
    keys = [publishable(tight, account_id) for _ in range(3)]
    # The per-key buckets hold 2 each; the address's 3 runs out first.
    codes = [(await unit(tight.client, key)).status_code for key in keys for _ in range(2)]
    assert codes == [200, 200, 200, 429, 429, 429]


def _headers(response: httpx.Response, *names: str) -> dict[str, Any]:
    return {name: response.headers.get(name) for name in names}


def test_a_real_browser_preflight_over_http(live_server: LiveServer) -> None:
    """The live server, its CLI and a browser's two requests, exactly as sent by Chromium."""
    _secret, account_id = live_server.create_account(sandbox=True)
    created = json.loads(
        live_server.cli(
            "key", "create", "--account", account_id, "--publishable", "--origin", SHOP, "--json"
        )
    )
    assert created["kind"] == "publishable"
    assert created["allowed_origins"] == [SHOP]
    key = created["api_key"]
    with httpx.Client(base_url=live_server.base_url, timeout=15) as client:
        answer = client.options("/v1/unit", headers={"Origin": SHOP, **PREFLIGHT})
        assert answer.status_code == 204
        assert _headers(answer, "access-control-allow-origin", "access-control-allow-methods") == {
            "access-control-allow-origin": SHOP,
            "access-control-allow-methods": "POST",
        }
        refused = client.options("/v1/unit", headers={"Origin": OTHER, **PREFLIGHT})
        assert refused.status_code == 403
        assert "access-control-allow-origin" not in refused.headers
        verified = client.post(
            "/v1/unit",
            headers={"Origin": SHOP, "X-API-Key": key, "Content-Type": "application/json"},
            content=json.dumps({"type": "email", "unit": "invalid@example.com"}),
        )
        assert verified.status_code == 200, verified.text
        assert verified.json()["wrong"] is True
        assert verified.headers["access-control-allow-origin"] == SHOP


def _documented_form(api: str, key: str) -> str:
    """The sign-up form of docs/browser.md, pointed at this server with this key."""
    found = re.search(r"<!-- example:signup -->\n```html\n(.*?)```", DOC.read_text(), re.S)
    assert found, "docs/browser.md lost its example"
    example = found.group(1)
    assert 'API = "https://verify.example.com"' in example
    assert 'KEY = "apx_pub_..."' in example
    example = example.replace("https://verify.example.com", api).replace("apx_pub_...", key)
    return f"<!doctype html><html><head><title>Sign up</title></head><body>{example}</body></html>"


@contextmanager
def _page_server(page: dict[str, str]) -> Iterator[str]:
    """A second loopback server for the page (``page["html"]``, read at each request):
    another port, so another origin."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page["html"].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.browser
def test_the_documented_sign_up_form_in_headless_chromium(live_server: LiveServer) -> None:
    """docs/browser.md's example, served from its own origin: Chromium sends the preflight
    and the POST itself, and the page shows what the sandbox answers."""
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from tests.dashboard.conftest import CHROMIUM_ARGS

    _secret, account_id = live_server.create_account(sandbox=True)
    page_html: dict[str, str] = {}
    with _page_server(page_html) as origin:
        created = live_server.cli(
            "key", "create", "--account", account_id, "--publishable", "--origin", origin, "--json"
        )
        page_html["html"] = _documented_form(live_server.base_url, json.loads(created)["api_key"])
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                _fill_the_form(sync_api, browser.new_page(), origin)
            finally:
                browser.close()


def _fill_the_form(sync_api: Any, page: Any, origin: str) -> None:
    page.goto(origin)
    email = page.locator("input[name=email]")
    for address, shown in [
        ("invalid@example.com", "cannot receive mail"),
        ("unknown@example.com", "could not check"),
        ("valid@example.com", "Looks good"),
    ]:
        email.fill(address)
        email.blur()  # the form checks on "change"
        sync_api.expect(page.locator("#hint")).to_contain_text(shown)
