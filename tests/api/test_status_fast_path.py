"""``GET /v1/batch/{uuid}`` and ``.../details`` through the fast path (``api/status_fast_path.py``):
the same bytes and headers as the routes, every failure answered by the routes, revocation at
once whichever process revokes."""

from __future__ import annotations

import uuid as uuid_module

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from apexverify.accounts import service as accounts
from apexverify.api.status_fast_path import StatusFastPath
from apexverify.app import create_app
from apexverify.settings import Settings
from apexverify.store.migrate import open_store
from tests.api.helpers import Api
from tests.support.fast import Lab
from tests.support.server import LiveServer

EMAILS = "valid@example.com\nrole@example.com\nnot-an-email\nvalid@example.com\n"
# Headers whose values differ between any two answers.
_PER_ANSWER = {"date", "x-request-id", "x-ratelimit-remaining", "x-ratelimit-used"}


@pytest.fixture(scope="module")
def api(live_server: LiveServer, api_key: str) -> Api:
    return Api(live_server.base_url, api_key)


def routes_spelling(batch_uuid: str) -> str:
    """The UUID in a form FastAPI accepts and the fast path leaves to the routes."""
    return batch_uuid.replace("-", "")


def assert_same_answer(fast: httpx.Response, routes: httpx.Response) -> None:
    assert fast.status_code == routes.status_code == 200
    assert fast.content == routes.content
    assert [name for name, _ in fast.headers.items()] == [
        name for name, _ in routes.headers.items()
    ]
    for name, value in routes.headers.items():
        if name not in _PER_ANSWER:
            assert fast.headers[name] == value, name


@pytest.mark.parametrize("suffix", ["", "/details"])
def test_a_ready_and_a_finished_batch_read_the_same_through_both(api: Api, suffix: str) -> None:
    # Non-ASCII text and a description: the encoders must agree on them too.
    ready = api.ready(EMAILS, name="Ünïcode ✓ \u2028 list", description='"quoted" <b>')
    done = api.run(EMAILS, name="finished")
    for batch_uuid in (ready, done):
        fast = api.client.get(f"/v1/batch/{batch_uuid}{suffix}")
        routes = api.client.get(f"/v1/batch/{routes_spelling(batch_uuid)}{suffix}")
        assert_same_answer(fast, routes)
    assert api.client.get(f"/v1/batch/{done}").json()["status"] == "verification_done"


def test_every_failure_is_the_routes_documented_answer(
    live_server: LiveServer, api: Api, api_key: str
) -> None:
    base = live_server.base_url
    batch_uuid = api.ready(EMAILS)
    path = f"/v1/batch/{batch_uuid}"
    for headers in ({}, {"X-API-Key": ""}, {"X-API-Key": api_key + "x"}):
        refused = httpx.get(base + path, headers=headers)
        assert refused.status_code == 401
        assert refused.json() == {"message": "Unauthorized"}
        assert refused.headers["X-Content-Type-Options"] == "nosniff"
        assert "X-RateLimit-Limit" in refused.headers
        assert "X-Request-Id" in refused.headers
    other = Api(base, live_server.create_account()[0])
    for suffix in ("", "/details"):
        missing = other.client.get(path + suffix)
        assert missing.status_code == 404
        assert missing.json() == {"message": "Batch not found."}
    assert api.client.get(f"/v1/batch/{uuid_module.uuid4()}").status_code == 404
    assert api.client.get("/v1/batch/not-a-uuid").status_code == 422
    upper = api.client.get(path.upper().replace("/V1/BATCH/", "/v1/batch/"))
    assert upper.status_code == 200
    assert upper.content == api.client.get(path).content


def publishable_key(server: LiveServer, account_id: str) -> str:
    """A publishable key of the account, made as the dashboard makes one."""
    store = open_store(Settings.from_env(server.env).database_url, create=False)
    try:
        with store.write() as session:
            new = accounts.create_key(
                session, account_id, "form", publishable=True, origins=["https://shop.example"]
            )
    finally:
        store.dispose()
    return new.api_key


def test_a_publishable_key_is_refused_403(live_server: LiveServer) -> None:
    key, account_id = live_server.create_account()
    batch_uuid = Api(live_server.base_url, key).ready(EMAILS)
    published = Api(live_server.base_url, publishable_key(live_server, account_id))
    for suffix in ("", "/details"):
        refused = published.client.get(f"/v1/batch/{batch_uuid}{suffix}")
        assert refused.status_code == 403
        assert refused.json() == {"message": accounts.ONLY_UNIT}


def test_a_key_revoked_by_another_process_or_this_one_stops_at_once(
    live_server: LiveServer,
) -> None:
    key, account_id = live_server.create_account()
    owner = Api(live_server.base_url, key)
    batch_uuid = owner.ready(EMAILS)
    for revoke_with in ("command", "api"):
        second = owner.client.post("/v1/account/keys", json={"label": revoke_with}).json()
        polling = Api(live_server.base_url, second["api_key"])
        assert polling.client.get(f"/v1/batch/{batch_uuid}").status_code == 200  # remembered
        if revoke_with == "command":
            live_server.cli("key", "revoke", "--account", account_id, second["id"])
        else:
            assert owner.client.delete(f"/v1/account/keys/{second['id']}").status_code == 200
        for suffix in ("", "/details"):
            refused = polling.client.get(f"/v1/batch/{batch_uuid}{suffix}")
            assert refused.status_code == 401, revoke_with
            assert refused.json() == {"message": "Unauthorized"}


def test_fast_answers_are_counted_in_the_metrics(live_server: LiveServer, api: Api) -> None:
    batch_uuid = api.ready(EMAILS)

    def ok_gets() -> float:
        text = httpx.get(f"{live_server.base_url}/metrics").text
        for line in text.splitlines():
            labels = 'method="GET"' in line and 'status="200"' in line
            if line.startswith("apexverify_http_requests_total{") and labels:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = ok_gets()
    for _ in range(5):
        assert api.client.get(f"/v1/batch/{batch_uuid}").status_code == 200
    # The /metrics request that read "before" is counted too, once it was answered.
    assert ok_gets() >= before + 5


async def test_the_fast_path_answers_alone_and_leaves_every_failure_to_the_routes(
    lab: Lab,
) -> None:
    """In process: what reaches the app behind the fast path."""
    _account_id, key = lab.account(sandbox=True)
    batch_uuid = await lab.upload(key, EMAILS)
    app = create_app(services=lab.services)
    reached: list[str] = []

    async def routes(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    fast = StatusFastPath(routes)

    async def in_app(scope: Scope, receive: Receive, send: Send) -> None:
        await fast({**scope, "app": app}, receive, send)

    transport = httpx.ASGITransport(app=in_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://apexverify.test") as client:
        for suffix in ("", "/details"):
            answered = await client.get(
                f"/v1/batch/{batch_uuid}{suffix}", headers={"X-Api-Key": key}
            )
            assert answered.status_code == 200
            assert answered.json()["status"] == "ready_for_verification"
        assert reached == []
        left = [
            ("GET", f"/v1/batch/{batch_uuid}", {}),  # no key
            ("GET", f"/v1/batch/{batch_uuid}", {"X-Api-Key": key + "x"}),
            ("GET", f"/v1/batch/{uuid_module.uuid4()}", {"X-Api-Key": key}),
            ("GET", f"/v1/batch/{batch_uuid.upper()}", {"X-Api-Key": key}),
            ("GET", f"/v1/batch/{batch_uuid}/export", {"X-Api-Key": key}),
            ("DELETE", f"/v1/batch/{batch_uuid}", {"X-Api-Key": key}),
            ("HEAD", f"/v1/batch/{batch_uuid}", {"X-Api-Key": key}),
        ]
        for method, path, headers in left:
            assert (await client.request(method, path, headers=headers)).status_code == 418
        assert len(reached) == len(left)
