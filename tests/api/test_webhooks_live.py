"""Webhooks against a real ``apexverify serve`` and a receiver on loopback: the signed events
of a batch's lifecycle (checked with the documented standard-library code and with the
``standardwebhooks`` package), deliveries pending at a kill -9 made after the restart with
the same webhook-id, and the endpoints managed from the dashboard."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from standardwebhooks.webhooks import Webhook

from tests.api.helpers import Api
from tests.support.dashboard import csrf, signed_in
from tests.support.server import LiveServer, start_server
from tests.webhooks.receiver import Received, receiving, verify

LIST = "a@example.com\nb@example.com\n"
# Loopback receivers, and retries soon enough for a test.
HOOK_ENV = {
    "APEXVERIFY_WEBHOOKS_ALLOW_PRIVATE_NETWORKS": "true",
    "APEXVERIFY_WEBHOOKS_RETRY_BASE_SECONDS": "0.5",
    "APEXVERIFY_WEBHOOKS_RETRY_MAX_SECONDS": "2",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("webhooks"), **HOOK_ENV)
    yield live
    live.stop()


def test_a_batch_lifecycle_is_signed_and_delivered(server: LiveServer) -> None:
    key, _account = server.create_account()
    api = Api(server.base_url, key)
    with receiving() as receiver:
        created = api.client.post("/v1/webhooks", json={"url": receiver.url})
        assert created.status_code == 200, created.text
        secret = created.json()["secret"]
        batch_uuid = api.ready(LIST)
        receiver.wait_for(1)
        assert api.client.post(f"/v1/batch/{batch_uuid}").json() == {"status": "ok"}
        got = receiver.wait_for(2)
    assert [r.json["type"] for r in got] == [
        "batch.ready_for_verification",
        "batch.verification_done",
    ]
    assert {r.json["data"]["batch_uuid"] for r in got} == {batch_uuid}
    assert got[1].json["data"]["stats"]["total_verification"] == 2
    for request in got:
        assert verify(secret, request.headers, request.body)
        Webhook(secret).verify(request.body, request.headers)
    # The server records a delivery once the receiver's answer is back, a moment after the
    # receiver saw the request: wait for the log to settle before reading it.
    deadline = time.monotonic() + 30
    while True:
        log = api.client.get(f"/v1/webhooks/{created.json()['id']}/deliveries").json()
        settled = all(d["status"] != "pending" for d in log["deliveries"])
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [(d["event"], d["status"]) for d in log["deliveries"]] == [
        ("batch.verification_done", "delivered"),
        ("batch.ready_for_verification", "delivered"),
    ]


def _answered_ok(received: list[Received]) -> bool:
    return any(r.answered == 200 for r in received)


def test_deliveries_pending_at_a_kill_are_made_after_the_restart(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    live = start_server(tmp_path_factory.mktemp("webhooks-kill"), **HOOK_ENV)
    try:
        key, _account = live.create_account()
        api = Api(live.base_url, key)
        with receiving() as receiver:
            receiver.default = 500  # the receiver is down: every attempt fails
            created = api.client.post("/v1/webhooks", json={"url": receiver.url}).json()
            api.ready(LIST)
            receiver.wait_for(2)  # the first attempt and a retry failed
            live.kill()
            assert not _answered_ok(receiver.received)
            receiver.default = 200  # back up while the server is down
            live.start()
            receiver.wait_until(_answered_ok)
            got = receiver.received
        assert {r.id for r in got} == {got[0].id}  # one event, one webhook-id on every attempt
        processed = {r.id for r in got if r.answered == 200}  # a receiver keyed on webhook-id
        assert len(processed) == 1
        (entry,) = api.client.get(f"/v1/webhooks/{created['id']}/deliveries").json()["deliveries"]
        assert entry["status"] == "delivered"
        # An attempt the kill cut short (sent, its outcome not written) is made again: at
        # least once, which the webhook-id makes harmless.
        assert len(got) >= 3
        assert entry["attempts"] >= 2
    finally:
        live.stop()


def test_endpoints_from_the_dashboard(server: LiveServer) -> None:
    key, account = server.create_account()
    api = Api(server.base_url, key)
    by_api = api.client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/api"}).json()
    browser = signed_in(server, key)
    page = browser.get("/account/webhooks")
    assert page.status_code == 200
    assert "http://127.0.0.1:9/api" in page.text
    form = {
        "csrf_token": csrf(browser, "/account/webhooks"),
        "url": "http://127.0.0.1:9/dashboard",
        "events": ["batch.cancelled", "batch.internal_error"],
    }
    answer = browser.post("/account/webhooks", data=form)
    assert answer.status_code == 200
    assert "whsec_" in answer.text  # shown once, on this page
    forged = browser.post("/account/webhooks", data={**form, "csrf_token": "forged"})
    assert forged.status_code == 403
    bad = browser.post("/account/webhooks", data={**form, "url": "ftp://x.example"})
    assert bad.status_code == 422
    assert "https:// or http://" in bad.text
    # The server-side command sees what the dashboard added (same database, same rules).
    listed = json.loads(server.cli("webhook", "list", "--account", account, "--json"))
    dashboard_hook = next(e for e in listed if e["url"].endswith("/dashboard"))
    assert dashboard_hook["events"] == ["batch.cancelled", "batch.internal_error"]
    assert "whsec_" not in browser.get("/account/webhooks").text
    log = browser.get(f"/account/webhooks/{dashboard_hook['id']}")
    assert log.status_code == 200
    assert "Nothing sent yet" in log.text
    removed = browser.post(
        f"/account/webhooks/{dashboard_hook['id']}/remove",
        data={"csrf_token": csrf(browser, "/account/webhooks")},
    )
    assert removed.status_code == 303
    assert [e["id"] for e in api.client.get("/v1/webhooks").json()["webhooks"]] == [by_api["id"]]
    assert browser.get(f"/account/webhooks/{dashboard_hook['id']}").status_code == 404
