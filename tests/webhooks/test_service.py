"""Webhooks in the fast tier: the in-process app and services, a recording queue, and a
receiver on loopback. Registration and its refusals over the API, the signed events of a
batch's lifecycle, retries with the same webhook-id, the sweep after a lost job, and no event
for a transition that rolled back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from apexverify.batches import states
from apexverify.batches.repository import batches as batch_rows
from apexverify.store.models import WebhookDelivery
from apexverify.webhooks import service, tasks
from apexverify.webhooks.events import Event, EventType
from tests.support.fast import Lab, open_lab
from tests.webhooks.receiver import receiving, verify

pytestmark = pytest.mark.fast

LIST = "a@example.com\nb@example.com\nnot-an-address\n"


@pytest.fixture
async def hooks(tmp_path: Path) -> AsyncIterator[Lab]:
    """A lab whose webhooks may call loopback, retrying at once (the queue runs retries)."""
    async with open_lab(
        tmp_path, webhooks_allow_private_networks=True, webhooks_retry_base_seconds=0.0
    ) as lab:
        yield lab


async def register(lab: Lab, key: str, url: str, **body: Any) -> dict[str, Any]:
    response = await lab.post(key, "/v1/webhooks", json={"url": url, **body})
    assert response.status_code == 200, response.text
    return dict(response.json())


def deliveries(lab: Lab) -> list[WebhookDelivery]:
    with lab.services.store.read() as session:
        return list(session.query(WebhookDelivery).order_by(WebhookDelivery.created_at))


async def test_a_batch_lifecycle_sends_signed_events(hooks: Lab) -> None:
    _account, key = hooks.account()
    with receiving() as receiver:
        endpoint = await register(hooks, key, receiver.url, description="n8n")
        assert endpoint["secret"].startswith("whsec_")
        batch_uuid = await hooks.upload(key, LIST)
        assert (await hooks.post(key, f"/v1/batch/{batch_uuid}")).json() == {"status": "ok"}
        await hooks.queue.run_all()
        got = receiver.received

    assert [r.json["type"] for r in got] == [
        "batch.ready_for_verification",
        "batch.verification_done",
    ]
    ready, done = (r.json["data"] for r in got)
    assert ready["batch_uuid"] == done["batch_uuid"] == batch_uuid
    assert ready["status"] == "ready_for_verification"
    assert ready["found_content"] == {"valid_email": 2, "wrong_email": 1, "duplicate_email": 0}
    assert done["status"] == "verification_done"
    assert done["stats"]["total_verification"] == 2
    assert done["cancelled"] is False
    assert done["execution_cost"] == 2.0
    # Exactly what GET /v1/batch/{uuid} says now, with the batch's identity.
    status = (await hooks.get(key, f"/v1/batch/{batch_uuid}")).json()
    assert {k: done[k] for k in status} == status
    for request in got:
        assert verify(endpoint["secret"], request.headers, request.body)
        # The reference implementation agrees (it raises when the signature is wrong).
        Webhook(endpoint["secret"]).verify(request.body, request.headers)
        assert request.headers["content-type"] == "application/json"
        assert request.path == "/hook"
    tampered = got[0].body.replace(b"ready", b"READY")
    assert not verify(endpoint["secret"], got[0].headers, tampered)
    assert not verify(endpoint["secret"].replace("whsec_", "whsec_A"), got[0].headers, got[0].body)


async def test_a_failed_attempt_is_retried_with_the_same_webhook_id(hooks: Lab) -> None:
    account_id, key = hooks.account()
    with receiving(statuses=[500, 500]) as receiver:
        endpoint = await register(hooks, key, receiver.url, events=["batch.ready_for_verification"])
        await hooks.upload(key, LIST)
        got = receiver.received

    assert len(got) == 3  # two 500s, then the third attempt succeeded
    assert len({r.id for r in got}) == 1  # one event: the receiver's idempotency key
    assert got[0].body == got[2].body
    processed = {r.id: r.json for r in got}  # what a receiver keyed on webhook-id keeps
    assert len(processed) == 1
    log = (await hooks.get(key, f"/v1/webhooks/{endpoint['id']}/deliveries")).json()
    (entry,) = log["deliveries"]
    assert entry["id"] == got[0].id
    assert entry["status"] == "delivered"
    assert entry["attempts"] == 3
    assert entry["last_status_code"] == 200
    assert entry["last_error"] is None
    assert entry["delivered_at"] is not None
    assert account_id  # the log is the account's own (another account gets 404 below)
    _other, other_key = hooks.account()
    lost = await hooks.get(other_key, f"/v1/webhooks/{endpoint['id']}/deliveries")
    assert lost.status_code == 404


async def test_the_last_attempt_marks_the_delivery_failed(tmp_path: Path) -> None:
    async with open_lab(
        tmp_path,
        webhooks_allow_private_networks=True,
        webhooks_retry_base_seconds=0.0,
        webhooks_max_attempts=2,
    ) as lab:
        _account, key = lab.account()
        with receiving(statuses=[503, 302]) as receiver:
            await register(lab, key, receiver.url)
            await lab.upload(key, LIST)
            assert len(receiver.received) == 2
        (row,) = deliveries(lab)
    assert (row.status, row.attempts, row.last_status_code) == ("failed", 2, 302)
    assert row.last_error is not None
    assert "redirects are not followed" in row.last_error
    assert row.next_attempt_at is None


async def test_events_filter_and_cancel_sends_cancelled_and_done(hooks: Lab) -> None:
    _account, key = hooks.account()
    with receiving() as receiver:
        await register(hooks, key, receiver.url, events=["batch.cancelled"])
        await register(hooks, key, receiver.url + "/all")
        batch_uuid = await hooks.upload(key, LIST)
        assert (await hooks.post(key, f"/v1/batch/{batch_uuid}")).json() == {"status": "ok"}
        cancel = await hooks.post(key, f"/v1/batch/{batch_uuid}/cancel")
        assert cancel.status_code == 200, cancel.text
        await hooks.queue.run_all()
        # The cancel path records its deliveries; the sweep defers what has no job yet.
        tasks.sweep(hooks.services)
        await hooks.queue.run_all()
        got = [(r.path, r.json["type"]) for r in receiver.received]
    assert sorted(got) == sorted(
        [
            ("/hook", "batch.cancelled"),
            ("/hook/all", "batch.ready_for_verification"),
            ("/hook/all", "batch.cancelled"),
            ("/hook/all", "batch.verification_done"),
        ]
    )
    cancelled = next(r for r in receiver.received if r.json["type"] == "batch.cancelled")
    assert cancelled.json["data"]["cancelled"] is True
    assert cancelled.json["data"]["cancelled_at"] is not None


async def test_a_pending_delivery_without_a_job_is_deferred_by_the_sweep(hooks: Lab) -> None:
    account_id, key = hooks.account()
    with receiving() as receiver:
        await register(hooks, key, receiver.url)
        # As after a restart of the in-process queue: the row is there, its job is not.
        with hooks.services.store.write() as session:
            (delivery_id,) = service.record_event(
                session, None, account_id, Event(EventType.DONE, "b-1", {"status": "x"})
            )
        assert hooks.queue.pending == []
        assert tasks.sweep(hooks.services) == 1
        assert tasks.sweep(hooks.services) == 0  # its job is waiting: not deferred twice
        await hooks.queue.run_all()
        assert [r.id for r in receiver.received] == [delivery_id]
        assert tasks.sweep(hooks.services) == 0  # delivered: nothing left to do


def abandoned_change(lab: Lab, account_id: str, batch_uuid: str) -> None:
    """A transition and its event in one unit of work that then fails."""
    with lab.services.store.write() as session:
        batch = batch_rows.by_uuid(session, batch_uuid)
        assert batch is not None
        states.transition(session, batch, states.READY, states.PARSING)
        service.record_event(session, lab.queue, account_id, Event(EventType.ERROR, batch_uuid, {}))
        raise RuntimeError("the change is abandoned")


async def test_no_event_for_a_transition_that_rolled_back(hooks: Lab) -> None:
    account_id, key = hooks.account()
    with receiving() as receiver:
        await register(hooks, key, receiver.url)
        batch_uuid = await hooks.upload(key, LIST)
        before = len(deliveries(hooks))
        with pytest.raises(RuntimeError):
            abandoned_change(hooks, account_id, batch_uuid)
        assert len(deliveries(hooks)) == before
        assert hooks.queue.pending == []


async def test_registration_refusals(tmp_path: Path) -> None:
    async with open_lab(tmp_path) as lab:  # private networks not allowed: the default
        _account, key = lab.account()
        for url, says in [
            ("http://127.0.0.1:9/hook", "127.0.0.1 is a loopback address"),
            ("http://localhost/hook", "loopback"),
            ("https://10.1.2.3/hook", "private"),
            ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a private"),
            ("http://[::1]/hook", "loopback"),
            ("ftp://example.com/hook", "https:// or http://"),
            ("https://user:pw@example.com/hook", "credentials"),
        ]:
            response = await lab.post(key, "/v1/webhooks", json={"url": url})
            assert response.status_code == 422, (url, response.text)
            body = response.json()
            assert body["detail"][0]["loc"] == ["body", "url"]
            assert says in body["message"], body["message"]
        unknown = await lab.post(
            key, "/v1/webhooks", json={"url": "https://x.example", "events": ["batch.gone"]}
        )
        assert unknown.status_code == 422
        # Not resolvable yet: accepted, checked again before each attempt.
        ok = await lab.post(key, "/v1/webhooks", json={"url": "https://hooks.invalid/x"})
        assert ok.status_code == 200, ok.text


async def test_list_get_and_remove(hooks: Lab) -> None:
    _account, key = hooks.account()
    created = await register(hooks, key, "http://127.0.0.1:9/a", events=["batch.cancelled"])
    listed = (await hooks.get(key, "/v1/webhooks")).json()["webhooks"]
    assert listed == [{k: v for k, v in created.items() if k != "secret"}]
    assert "secret" not in (await hooks.get(key, f"/v1/webhooks/{created['id']}")).json()
    _other, other_key = hooks.account()
    assert (await hooks.get(other_key, f"/v1/webhooks/{created['id']}")).status_code == 404
    gone = await hooks.client.delete(f"/v1/webhooks/{created['id']}", headers={"X-Api-Key": key})
    assert gone.json() == {"message": "Removed"}
    assert (await hooks.get(key, "/v1/webhooks")).json() == {"webhooks": []}
    again = await hooks.client.delete(f"/v1/webhooks/{created['id']}", headers={"X-Api-Key": key})
    assert again.status_code == 404
