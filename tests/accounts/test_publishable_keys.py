"""Publishable keys (apx_pub_...): the rules in accounts/ (what they authorize, from which
origins), the origin syntax, and the two places that manage them: the dashboard's account
page and ``apexverify key create --publishable``. Fast tier."""

from __future__ import annotations

import json
import re

import pytest

from apexverify.accounts import keys
from apexverify.accounts import service as accounts
from apexverify.cli.main import main
from apexverify.errors import BadRequest, Unauthorized
from tests.support.fast import Lab

SHOP = "https://shop.example"


def make_key(lab: Lab, account_id: str, *origins: str) -> accounts.NewKey:
    with lab.services.store.write() as session:
        return accounts.create_key(
            session, account_id, "form", publishable=True, origins=list(origins)
        )


@pytest.mark.parametrize(
    ("given", "origin"),
    [
        ("https://Shop.Example/", SHOP),
        ("https://shop.example:443", SHOP),
        ("http://localhost:3000", "http://localhost:3000"),
        ("http://shop.example:80", "http://shop.example"),
        ("http://[0:0::1]:8080", "http://[::1]:8080"),
        ("https://bücher.example", "https://xn--bcher-kva.example"),
    ],
)
def test_origins_are_kept_as_browsers_send_them(given: str, origin: str) -> None:
    assert keys.normalize_origin(given) == origin


@pytest.mark.parametrize(
    "given",
    [
        "shop.example",
        "ftp://shop.example",
        "https://shop.example/signup",
        "https://shop.example?x=1",
        "https://user@shop.example",
        "https://*.shop.example",
        "https://shop example",
        "https://shop.example:0",
        "https://shop.example:70000",
        "http://[zz::1]",
        "null",
    ],
)
def test_anything_but_scheme_host_port_is_refused(given: str) -> None:
    with pytest.raises(keys.InvalidOrigin):
        keys.normalize_origin(given)


def test_a_secret_key_never_looks_publishable(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = iter(["pub_unlucky", "fine", "pub_is_fine_here"])
    monkeypatch.setattr(keys.secrets, "token_urlsafe", lambda _n: next(drawn))
    assert keys.generate_key() == "apx_fine"  # drawn again
    assert keys.generate_key(keys.KeyKind.PUBLISHABLE) == "apx_pub_pub_is_fine_here"


def test_creation_checks_the_origins(lab: Lab) -> None:
    account_id, _secret = lab.account()
    new = make_key(lab, account_id, "https://Shop.example/", SHOP, "http://localhost:3000")
    assert new.api_key.startswith("apx_pub_")
    assert new.allowed_origins == (SHOP, "http://localhost:3000")  # normalized, deduplicated
    for origins in (
        [],
        ["https://shop.example/path"],
        [f"https://s{n}.example" for n in range(21)],
    ):
        with pytest.raises(BadRequest), lab.services.store.write() as session:
            accounts.create_key(session, account_id, publishable=True, origins=origins)
    with pytest.raises(BadRequest, match="Only a publishable key"), lab.services.store.write() as s:
        accounts.create_key(s, account_id, origins=[SHOP])


def test_a_publishable_key_authorizes_only_unit_calls_from_its_origins(lab: Lab) -> None:
    account_id, secret = lab.account()
    key = make_key(lab, account_id, SHOP).api_key
    with lab.services.store.read() as session:
        # Not a key for the dashboard's sign-in, its sessions or the upload guard.
        assert accounts.authenticate(session, key) is None
        found = accounts.find_key(session, key)
        assert found is not None
        assert accounts.active_key(session, found[1].id) is None
        with pytest.raises(accounts.KeyRefused, match="only call POST /v1/unit"):
            accounts.authorize(session, key)
        assert accounts.authorize_unit(session, key, SHOP)[0].id == account_id
        with pytest.raises(accounts.KeyRefused, match="no Origin"):
            accounts.authorize_unit(session, key, None)
        with pytest.raises(accounts.KeyRefused, match="not allowed from this origin"):
            accounts.authorize_unit(session, key, "https://evil.example")
        # A secret key keeps working everywhere, whatever Origin it comes with.
        assert accounts.authorize(session, secret)[0].id == account_id
        assert accounts.authorize_unit(session, secret, "https://evil.example")[0].id == account_id
        with pytest.raises(Unauthorized):
            accounts.authorize_unit(session, key + "x", SHOP)


def test_cors_is_for_publishable_keys_and_active_origins_only(lab: Lab) -> None:
    account_id, secret = lab.account()
    new = make_key(lab, account_id, SHOP)
    with lab.services.store.read() as session:
        assert accounts.origin_registered(session, SHOP)
        assert not accounts.origin_registered(session, "https://evil.example")
        assert accounts.cors_allowed(session, SHOP, new.api_key)
        assert accounts.cors_allowed(session, SHOP, None)
        assert not accounts.cors_allowed(session, SHOP, secret)
    with lab.services.store.write() as session:
        accounts.revoke_key(session, account_id, new.key_id)
    with lab.services.store.read() as session:
        assert not accounts.origin_registered(session, SHOP)
        assert not accounts.cors_allowed(session, SHOP, new.api_key)


def test_summaries_show_a_publishable_key_in_full_and_a_secret_one_by_prefix(lab: Lab) -> None:
    account_id, secret = lab.account()
    new = make_key(lab, account_id, SHOP)
    with lab.services.store.read() as session:
        first, second = accounts.key_summaries(session, account_id)
    assert (first["kind"], first["public_key"], first["allowed_origins"]) == ("secret", None, [])
    assert secret not in json.dumps(first)
    assert (second["kind"], second["public_key"]) == ("publishable", new.api_key)
    assert second["allowed_origins"] == [SHOP]


async def _signed_in(lab: Lab, api_key: str) -> int:
    signin = await lab.client.get("/signin")
    token = _csrf(signin.text)
    answer = await lab.client.post(
        "/signin", data={"api_key": api_key, "next": "/", "csrf_token": token}
    )
    return answer.status_code


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found
    return found.group(1)


async def test_the_account_page_creates_lists_and_revokes_publishable_keys(lab: Lab) -> None:
    account_id, secret = lab.account(sandbox=True)
    assert await _signed_in(lab, secret) == 303
    page = await lab.client.get("/account")
    form = {"csrf_token": _csrf(page.text), "kind": "publishable", "label": "signup"}
    refused = await lab.client.post("/account/keys", data={**form, "origins": "shop.example"})
    assert refused.status_code == 400
    assert "not an origin" in refused.text
    created = await lab.client.post(
        "/account/keys", data={**form, "origins": "https://Shop.example/\nhttp://localhost:3000"}
    )
    assert created.status_code == 200
    key = re.search(r'value="(apx_pub_[^"]+)"', created.text)
    assert key, created.text
    listed = (await lab.client.get("/account")).text
    assert key.group(1) in listed  # shown again: it is not a secret
    assert "https://shop.example, http://localhost:3000" in listed
    # Not a key to sign in with.
    lab.client.cookies.clear()
    assert await _signed_in(lab, key.group(1)) == 401
    assert await _signed_in(lab, secret) == 303
    with lab.services.store.read() as session:
        found = accounts.find_key(session, key.group(1))
    assert found is not None
    key_id = found[1].id
    page = await lab.client.get("/account")
    revoked = await lab.client.post(
        f"/account/keys/{key_id}/revoke", data={"csrf_token": _csrf(page.text)}
    )
    assert revoked.status_code == 303
    with lab.services.store.read() as session:
        assert accounts.find_key(session, key.group(1)) is None
        assert accounts.list_keys(session, account_id)[1].revoked_at is not None


def test_the_cli_creates_and_lists_publishable_keys(
    lab: Lab, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    account_id, _secret = lab.account()
    monkeypatch.setenv("APEXVERIFY_DATABASE_URL", lab.services.settings.database_url)
    base = ["key", "create", "--account", account_id, "--publishable", "--json"]
    assert main([*base, "--origin", "https://A.example/", "--origin", "http://localhost:3000"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["api_key"].startswith("apx_pub_")
    assert created["allowed_origins"] == ["https://a.example", "http://localhost:3000"]
    assert main(base) == 1  # no origin
    assert "at least one allowed origin" in capsys.readouterr().err
    assert main(["key", "list", "--account", account_id]) == 0
    listed = capsys.readouterr().out
    assert f"{created['api_key']}  (no label)" not in listed
    assert created["api_key"] in listed
    assert "from https://a.example http://localhost:3000" in listed
