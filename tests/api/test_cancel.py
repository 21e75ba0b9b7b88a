"""``POST /v1/batch/{uuid}/cancel`` (an ApexVerify extension) over HTTP, with a real (charged)
account against the loopback DNS + SMTP lab. Greylisted addresses are retried only after
10 minutes, so the batch is caught running, with the other addresses verified, for as long
as the test needs: the cancel refunds exactly the greylisted ones, the verified keep their
verdicts, and every documented refusal is checked on the same server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.api.schemas import assert_details, assert_status_response
from tests.labs.smtp_lab import email_lab

UNKNOWN_UUID = "00000000-0000-0000-0000-000000000000"


async def _status(client: httpx.AsyncClient, batch_uuid: str) -> dict[str, Any]:
    return dict((await client.get(f"/v1/batch/{batch_uuid}")).json())


async def _until(client: httpx.AsyncClient, batch_uuid: str, done: Any) -> dict[str, Any]:
    """Poll until ``done(status body)``; the deadline only stops a hung test."""
    deadline = time.monotonic() + 60
    while not done(body := await _status(client, batch_uuid)):
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.1)
    return body


async def _upload(client: httpx.AsyncClient, addresses: list[str]) -> str:
    upload = await client.post(
        "/v1/batch",
        files={"file": ("l.txt", "\n".join(addresses).encode(), "text/plain")},
        data={"name": "cancel", "type": "email", "target_country": "US"},
    )
    batch_uuid = str(upload.json()["batch_uuid"])
    await _until(client, batch_uuid, lambda b: b["status"] == "ready_for_verification")
    return batch_uuid


async def _balance(client: httpx.AsyncClient) -> float:
    return float((await client.get("/v1/account/credits")).json()["email_credit"])


async def test_cancel_a_running_batch_over_http(make_server) -> None:  # type: ignore[no-untyped-def]
    async with email_lab() as lab:
        d = lab.domains
        env = lab.server_env(
            smtp_greylist_retry_seconds=600,  # the greylisted rows wait: the batch runs on
        )
        server = make_server(**env)
        key, _ = server.create_account(sandbox=False, email_credits=100)
        verified = {f"alice@{d.rejects}": "valid", f"bob@{d.rejects}": "valid"}
        verified[f"nobody@{d.rejects}"] = "wrong"
        waiting = [f"{user}@{d.greylist}" for user in ("alice", "bob", "carol")]
        async with httpx.AsyncClient(
            base_url=server.base_url, headers={"X-API-Key": key}, timeout=30
        ) as client:
            batch_uuid = await _upload(client, [*verified, *waiting])
            assert (await client.post(f"/v1/batch/{batch_uuid}")).json() == {"status": "ok"}
            assert await _balance(client) == 100 - 6
            running = await _until(client, batch_uuid, lambda b: b["progress"]["verified"] == 3)
            assert running["status"] == "verification_ongoing"

            cancel = await client.post(f"/v1/batch/{batch_uuid}/cancel")
            assert cancel.status_code == 200, cancel.text
            assert cancel.json() == {
                "status": "ok",
                "records_cancelled": 3,
                "refunded_credits": 3.0,
            }
            assert await _balance(client) == 100 - 6 + 3

            status = await _status(client, batch_uuid)
            assert_status_response(status)  # still exactly the documented done variant
            assert status["status"] == "verification_done"
            assert status["cancelled"] is True
            assert status["stats"]["total_verification_cancelled"] == 3
            details = (await client.get(f"/v1/batch/{batch_uuid}/details")).json()
            assert_details(details)
            assert details["cancelled_at"] == status["cancelled_at"]
            export = await client.get(
                f"/v1/batch/{batch_uuid}/export",
                params={"format": "json", "include_statistics": "false"},
            )
            rows = export.json()
            for address, verdict in verified.items():
                assert rows[address][verdict] is True, rows[address]
                assert rows[address]["evidence"] != "cancelled"
            for address in waiting:
                assert rows[address]["unknown"] is True
                assert rows[address]["evidence"] == "cancelled"

            again = await client.post(f"/v1/batch/{batch_uuid}/cancel")
            assert (again.status_code, again.json()) == (
                409,
                {"message": "The batch was already cancelled."},
            )
            relaunch = await client.post(f"/v1/batch/{batch_uuid}")
            assert relaunch.json() == {"status": "verification_already_done"}
            assert await _balance(client) == 100 - 6 + 3
            await _refusals(client, d.rejects)


async def _refusals(client: httpx.AsyncClient, domain: str) -> None:
    ready = await _upload(client, [f"carol@{domain}"])
    not_running = await client.post(f"/v1/batch/{ready}/cancel")
    assert not_running.status_code == 409
    assert "delete it instead" in not_running.json()["message"]
    await client.post(f"/v1/batch/{ready}")
    finished = await _until(client, ready, lambda b: b["status"] == "verification_done")
    assert (finished["cancelled"], finished["cancelled_at"]) == (False, None)
    assert_status_response(finished)
    late = await client.post(f"/v1/batch/{ready}/cancel")
    assert late.status_code == 409
    assert "already finished" in late.json()["message"]
    assert (await client.post(f"/v1/batch/{UNKNOWN_UUID}/cancel")).status_code == 404
    assert (await client.post("/v1/batch/not-a-uuid/cancel")).status_code == 422
