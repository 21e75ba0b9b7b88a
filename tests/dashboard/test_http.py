"""The dashboard over plain HTTP: cookie flags, CSRF, forged and expired sessions, and bad
input answered with a page (never a 500) that leaves batches, keys and balances unchanged."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from http.cookies import SimpleCookie

import httpx
import pytest

from tests.support.dashboard import browser_client, csrf, signed_in, upload
from tests.support.server import LiveServer


@pytest.fixture(scope="module")
def account(dash_server: LiveServer) -> tuple[str, str]:
    return dash_server.create_account(sandbox=True)


@pytest.fixture
def client(dash_server: LiveServer, account: tuple[str, str]) -> Iterator[httpx.Client]:
    signed = signed_in(dash_server, account[0])
    yield signed
    signed.close()


def api(server: LiveServer, api_key: str, method: str, path: str, **kw: object) -> httpx.Response:
    return httpx.request(
        method, f"{server.base_url}{path}", headers={"X-API-Key": api_key}, timeout=15, **kw
    )


def test_session_cookie_is_httponly_strict_and_holds_no_key(
    dash_server: LiveServer, account: tuple[str, str]
) -> None:
    client = browser_client(dash_server)
    seed_header = client.get("/signin").headers["set-cookie"]
    assert "HttpOnly" in seed_header
    assert "SameSite=strict" in seed_header
    answer = client.post(
        "/signin", data={"api_key": account[0], "next": "/", "csrf_token": csrf(client)}
    )
    header = answer.headers["set-cookie"]
    cookie = SimpleCookie(header)["apexverify_session"]
    assert cookie["httponly"]
    assert cookie["samesite"].lower() == "strict"
    assert account[0] not in header
    assert account[0][4:20] not in header
    assert client.get("/").status_code == 200


def test_wrong_key_and_missing_token_are_refused(dash_server: LiveServer) -> None:
    client = browser_client(dash_server)
    wrong = client.post(
        "/signin", data={"api_key": "apx_nope", "next": "/", "csrf_token": csrf(client)}
    )
    assert wrong.status_code == 401
    assert "not valid" in wrong.text
    assert "apexverify_session" not in wrong.headers.get("set-cookie", "")
    no_token = client.post("/signin", data={"api_key": "apx_nope"})
    assert no_token.status_code == 403
    # A token minted for another browser's seed is no good here.
    other = browser_client(dash_server)
    stolen = csrf(other)
    assert client.post("/signin", data={"api_key": "x", "csrf_token": stolen}).status_code == 403


def test_forms_without_a_valid_token_change_nothing(
    dash_server: LiveServer, account: tuple[str, str], client: httpx.Client
) -> None:
    before = api(dash_server, account[0], "GET", "/v1/account/keys").json()["keys"]
    assert client.post("/account/keys", data={"label": "x"}).status_code == 403
    assert (
        client.post("/account/keys", data={"label": "x", "csrf_token": "forged"}).status_code == 403
    )
    key_id = before[0]["id"]
    assert client.post(f"/account/keys/{key_id}/revoke", data={}).status_code == 403
    assert api(dash_server, account[0], "GET", "/v1/account/keys").json()["keys"] == before
    assert client.post("/signout", data={}).status_code == 403


def test_forged_tampered_and_expired_sessions_are_signed_out(
    dash_server: LiveServer, client: httpx.Client
) -> None:
    value = client.cookies["apexverify_session"]
    key_id, issued, mac = value.split(".")
    for bad in (
        f"{key_id}.{issued}.{mac[:-2]}xx",
        f"{key_id}.{int(issued) + 60}.{mac}",
        f"{key_id}.{int(time.time()) - 13 * 3600}.{mac}",
        "garbage",
    ):
        forged = browser_client(dash_server)
        forged.cookies.set("apexverify_session", bad)
        answer = forged.get("/")
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/signin")
        status = forged.get("/batches/00000000-0000-0000-0000-000000000000/status")
        assert status.status_code == 401
        assert status.json() == {"message": "Signed out"}


def test_next_never_leaves_the_site(dash_server: LiveServer, account: tuple[str, str]) -> None:
    client = browser_client(dash_server)
    for target in ("//evil.example/", "https://evil.example/", "javascript:alert(1)"):
        answer = client.post(
            "/signin", data={"api_key": account[0], "next": target, "csrf_token": csrf(client)}
        )
        assert answer.headers["location"] == "/"


def _batch_total(server: LiveServer, api_key: str) -> int:
    return int(api(server, api_key, "GET", "/v1/batch").json()["total"])


@pytest.mark.parametrize(
    ("content", "fields", "status", "message"),
    [
        (b"a@example.com\n", {"target_country": "XX"}, 400, "ISO 3166-1"),
        (b"a@example.com\n", {"target_audience": "24"}, 400, "less than or equal to 23"),
        (b"a@example.com\n", {"max_global_cache_backoff": "0"}, 400, "greater than or equal"),
        (b"a@example.com\n", {"type": "fax"}, 400, "email"),
        (b"a@example.com\n", {"name": ""}, 400, "Give the batch a name"),
        (b"\xff\xfe\x00bad", {}, 400, "UTF-8"),
        (b"", {}, 400, "empty"),
    ],
)
def test_bad_uploads_get_the_form_back_and_create_nothing(
    dash_server: LiveServer,
    account: tuple[str, str],
    client: httpx.Client,
    content: bytes,
    fields: dict[str, str],
    status: int,
    message: str,
) -> None:
    before = _batch_total(dash_server, account[0])
    answer = upload(client, content, **fields)
    assert answer.status_code == status
    assert "text/html" in answer.headers["content-type"]
    assert message in answer.text
    assert 'role="alert"' in answer.text
    assert _batch_total(dash_server, account[0]) == before


def test_upload_without_a_file_is_refused(client: httpx.Client) -> None:
    data = {"csrf_token": csrf(client, "/batches/new"), "name": "x", "type": "email"}
    answer = client.post("/batches/new", data=data)
    assert answer.status_code == 400
    assert "Choose a file" in answer.text


def test_unknown_and_malformed_batch_paths_are_404_pages(
    dash_server: LiveServer, client: httpx.Client
) -> None:
    for path in (
        "/batches/not-a-uuid",
        "/batches/00000000-0000-0000-0000-000000000000",
        "/batches/00000000-0000-0000-0000-000000000000/launch",
        "/batches/00000000-0000-0000-0000-000000000000/export?format=xlsx",
    ):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "text/html" in answer.headers["content-type"]
    assert client.get("/?page=0").status_code == 404
    # The API keeps its JSON errors.
    assert client.get("/v1/batch/not-a-uuid").json()["message"] == "Unauthorized"


def test_another_accounts_batch_is_invisible(
    dash_server: LiveServer, account: tuple[str, str], client: httpx.Client
) -> None:
    other_key, _ = dash_server.create_account(sandbox=True)
    upload = api(
        dash_server,
        other_key,
        "POST",
        "/v1/batch",
        data={"name": "theirs", "type": "email", "target_country": "US"},
        files={"file": ("l.txt", b"valid@example.com\n", "text/plain")},
    )
    their_uuid = upload.json()["batch_uuid"]
    assert client.get(f"/batches/{their_uuid}").status_code == 404
    token = csrf(client, "/")
    assert (
        client.post(f"/batches/{their_uuid}/delete", data={"csrf_token": token}).status_code == 404
    )
    assert api(dash_server, other_key, "GET", f"/v1/batch/{their_uuid}").status_code == 200


def _wait_ready(server: LiveServer, api_key: str, batch_uuid: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = api(server, api_key, "GET", f"/v1/batch/{batch_uuid}").json()["status"]
        if status == "ready_for_verification":
            return
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_uuid} never became ready")


def test_launch_without_credits_shows_402_and_moves_nothing(dash_server: LiveServer) -> None:
    api_key, _ = dash_server.create_account(sandbox=False, email_credits=1, phone_credits=0)
    client = signed_in(dash_server, api_key)
    answer = upload(client, b"a@example.com\nb@example.com\nc@example.com\n")
    assert answer.status_code == 303
    batch_uuid = answer.headers["location"].rsplit("/", 1)[1]
    _wait_ready(dash_server, api_key, batch_uuid)
    token = csrf(client, f"/batches/{batch_uuid}/launch")
    refused = client.post(f"/batches/{batch_uuid}/launch", data={"csrf_token": token})
    assert refused.status_code == 402
    assert "reload your credits" in refused.text
    export = client.get(f"/batches/{batch_uuid}/export?format=json")
    assert export.status_code == 400
    assert "text/html" in export.headers["content-type"]
    client.close()
    credits = api(dash_server, api_key, "GET", "/v1/account/credits").json()
    assert credits["email_credit"] == 1
    status = api(dash_server, api_key, "GET", f"/v1/batch/{batch_uuid}").json()
    assert status["status"] == "ready_for_verification"


def test_static_assets_are_served(dash_server: LiveServer) -> None:
    css = httpx.get(f"{dash_server.base_url}/static/app.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    js = httpx.get(f"{dash_server.base_url}/static/app.js")
    assert "javascript" in js.headers["content-type"]
    assert "localStorage" not in js.text


def test_pages_are_not_framed_cached_or_scriptable_from_elsewhere(client: httpx.Client) -> None:
    for path in ("/", "/batches/new", "/account", "/batches/not-a-uuid"):
        headers = client.get(path).headers
        assert headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["cache-control"] == "no-store"


def _wait_status(server: LiveServer, api_key: str, batch_uuid: str, wanted: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = api(server, api_key, "GET", f"/v1/batch/{batch_uuid}").json()["status"]
        if status == wanted:
            return
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_uuid} never reached {wanted}")


def test_phone_batch_page_charts_line_types(
    dash_server: LiveServer, account: tuple[str, str], client: httpx.Client
) -> None:
    # Sandbox phones: the last digit decides (0 live mobile, 4 landline, 6 voip, 2 dead).
    numbers = b"+14155550100\n+14155550110\n+14155550104\n+14155550106\n+14155550102\n"
    upload = api(
        dash_server,
        account[0],
        "POST",
        "/v1/batch",
        data={"name": "phones", "type": "phone", "target_country": "US"},
        files={"file": ("p.txt", numbers, "text/plain")},
    )
    batch_uuid = upload.json()["batch_uuid"]
    _wait_status(dash_server, account[0], batch_uuid, "ready_for_verification")
    assert api(dash_server, account[0], "POST", f"/v1/batch/{batch_uuid}").is_success
    _wait_status(dash_server, account[0], batch_uuid, "verification_done")
    html = client.get(f"/batches/{batch_uuid}").text
    assert "Line type" in html
    counts = dict(re.findall(r'data-breakdown="([a-z_]+)">(\d+)<', html))
    assert counts == {"mobile": "3", "landline": "1", "voip": "1"}
    verdicts = dict(re.findall(r'data-verdict="([a-z]+)">(\d+)<', html))
    assert verdicts == {"valid": "4", "wrong": "1", "unknown": "0"}


def test_too_large_upload_is_refused_with_the_form(make_server: object) -> None:
    server = make_server(APEXVERIFY_MAX_UPLOAD_BYTES="1000")  # type: ignore[operator]
    api_key, _ = server.create_account(sandbox=True)
    client = signed_in(server, api_key)
    answer = upload(client, b"valid@example.com\n" * 200)
    assert answer.status_code == 413
    assert "larger than" in answer.text
    assert _batch_total(server, api_key) == 0
    client.close()


def test_changing_parameters_reparses_and_is_refused_after_launch(
    dash_server: LiveServer, account: tuple[str, str], client: httpx.Client
) -> None:
    answer = upload(client, b"valid@example.com\nrole@example.com\n+14155550100\n")
    batch_uuid = answer.headers["location"].rsplit("/", 1)[1]
    _wait_status(dash_server, account[0], batch_uuid, "ready_for_verification")
    form_page = client.get(f"/batches/{batch_uuid}/parameters").text
    assert 'value="email" checked' in form_page
    token = csrf(client, f"/batches/{batch_uuid}/parameters")
    bad = client.post(
        f"/batches/{batch_uuid}/parameters",
        data={"csrf_token": token, "type": "phone", "target_country": "ZZ"},
    )
    assert bad.status_code == 400
    assert "ISO 3166-1" in bad.text
    changed = client.post(
        f"/batches/{batch_uuid}/parameters",
        data={
            "csrf_token": token,
            "type": "phone",
            "target_country": "GB",
            "target_industry": "",
            "target_objective": "3",
            "use_global_cache": "true",
        },
    )
    assert changed.status_code == 303
    _wait_status(dash_server, account[0], batch_uuid, "ready_for_verification")
    details = api(dash_server, account[0], "GET", f"/v1/batch/{batch_uuid}/details").json()
    assert details["parameters"]["type"] == "phone"
    assert details["parameters"]["target_country"] == "GB"
    assert details["parameters"]["target_objective"] == 3
    assert details["parameters"]["use_account_cache"] is False
    assert details["found_content"] == {"valid_phone": 1, "wrong_phone": 2, "duplicate_phone": 0}

    assert api(dash_server, account[0], "POST", f"/v1/batch/{batch_uuid}").is_success
    assert client.get(f"/batches/{batch_uuid}/parameters").status_code == 303
    locked = client.post(
        f"/batches/{batch_uuid}/parameters",
        data={"csrf_token": token, "type": "email", "target_country": "US"},
    )
    assert locked.status_code == 400
    assert "launched" in locked.text
    after = api(dash_server, account[0], "GET", f"/v1/batch/{batch_uuid}/details").json()
    assert after["parameters"]["type"] == "phone"


def test_deleting_a_running_batch_is_refused_and_keeps_it(
    dash_server: LiveServer, account: tuple[str, str], client: httpx.Client
) -> None:
    lines = "".join(f"valid{i}@example.com\n" for i in range(600)).encode()
    batch_uuid = upload(client, lines).headers["location"].rsplit("/", 1)[1]
    _wait_status(dash_server, account[0], batch_uuid, "ready_for_verification")
    assert api(dash_server, account[0], "POST", f"/v1/batch/{batch_uuid}").is_success
    token = csrf(client, f"/batches/{batch_uuid}/delete")
    refused = client.post(f"/batches/{batch_uuid}/delete", data={"csrf_token": token})
    assert refused.status_code == 400
    assert "can be deleted once that ends" in refused.text
    _wait_status(dash_server, account[0], batch_uuid, "verification_done")
    done = client.post(f"/batches/{batch_uuid}/delete", data={"csrf_token": token})
    assert done.status_code == 303
    assert api(dash_server, account[0], "GET", f"/v1/batch/{batch_uuid}").status_code == 404
