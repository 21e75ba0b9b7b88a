"""A batch whose MX accepts connections and never greets (outbound port 25 filtered, as on
many clouds) reports its stall with a reason while it runs, and at the stall deadline ends
``unknown`` for the rest, refunded. Live server, loopback DNS + SMTP lab."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.helpers import until
from tests.labs.smtp_lab import email_lab

ADDRESSES = ["alice", "bob", "carol", "info", "postmaster"]


async def _body(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    return dict((await client.get(path)).json())


async def test_a_silent_mx_stalls_visibly_then_ends_unknown_refunded(make_server) -> None:  # type: ignore[no-untyped-def]
    async with email_lab() as lab:
        env = lab.server_env(
            smtp_greylist_retry_seconds=1,
            max_verify_attempts=100,  # only the deadline can end these records
            stall_deadline_seconds=4,
        )
        server = make_server(**env)
        key, _ = server.create_account(sandbox=False, email_credits=10)
        addresses = [f"{local}@{lab.domains.silent}" for local in ADDRESSES]
        async with httpx.AsyncClient(
            base_url=server.base_url, headers={"X-API-Key": key}, timeout=30
        ) as client:
            upload = await client.post(
                "/v1/batch",
                files={"file": ("l.txt", "\n".join(addresses).encode(), "text/plain")},
                data={"name": "silent", "type": "email", "target_country": "US"},
            )
            batch_uuid = upload.json()["batch_uuid"]
            path = f"/v1/batch/{batch_uuid}"
            ready = "ready_for_verification"
            await until(lambda: _body(client, path), lambda b: b["status"] == ready, 30)
            assert (await client.post(path)).json() == {"status": "ok"}
            assert (await client.get("/v1/account/credits")).json()["email_credit"] == 5

            stalled = await until(lambda: _body(client, path), lambda b: b.get("stall"), 60)
            assert stalled["status"] == "verification_ongoing"
            assert stalled["progress"] == {"verified": 0, "total": 5}
            assert "timeout" in stalled["stall"]["reason"]
            assert stalled["stall"]["since"]
            assert stalled["stall"]["retry_at"]
            details = (await client.get(f"{path}/details")).json()
            assert details["stall"]["reason"] == stalled["stall"]["reason"]

            finished = "verification_done"
            done = await until(lambda: _body(client, path), lambda b: b["status"] == finished, 60)
            assert done["stats"]["total_verification_unknown"] == 5
            export = (await client.get(f"{path}/export", params={"format": "json"})).json()
            credits = (await client.get("/v1/account/credits")).json()["email_credit"]
        for address in addresses:
            assert export[address]["unknown"] is True
            assert export[address]["evidence"] == "stalled"
            assert "timeout" in export[address]["reason"]
        assert credits == 10  # every record refunded
    log = server.log_tail(100_000)
    assert "stalled:" in log
    assert "ended after a stall" in log
