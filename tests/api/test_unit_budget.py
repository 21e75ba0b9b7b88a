"""``POST /v1/unit`` within its time budget: a silent MX (greets never) and a greylisting one
give ``unknown`` with a reason and a ``retry_after`` hint, refunded and never cached; a
conclusive answer is charged as before. Against the loopback DNS + SMTP lab."""

from __future__ import annotations

import asyncio

import httpx

from tests.labs.smtp_lab import email_lab

BUDGET = 1.5


async def test_unit_answers_within_its_budget_and_refunds_inconclusive(make_server) -> None:  # type: ignore[no-untyped-def]
    async with email_lab() as lab:
        d = lab.domains
        env = lab.server_env(
            # Far longer than the budget: only the budget can end the silent probe in time.
            smtp_timeout_seconds=30.0,
            smtp_greylist_retry_seconds=120,
            unit_timeout_seconds=BUDGET,
        )
        server = make_server(**env)
        key, _ = server.create_account(sandbox=False, email_credits=10)
        async with httpx.AsyncClient(
            base_url=server.base_url, headers={"X-API-Key": key}, timeout=60
        ) as client:

            async def unit(address: str) -> dict:  # type: ignore[type-arg]
                response = await client.post("/v1/unit", json={"type": "email", "unit": address})
                assert response.status_code == 200, response.text
                return dict(response.json())

            async def balance() -> float:
                return float((await client.get("/v1/account/credits")).json()["email_credit"])

            silent = await unit(f"alice@{d.silent}")
            assert (silent["unknown"], silent["valid"], silent["wrong"]) == (True, False, False)
            assert silent["evidence"] == "timeout"
            assert f"within the {BUDGET:g} s budget" in silent["reason"]
            assert silent["retry_after"] >= 1
            assert await balance() == 10  # refunded

            grey = await unit(f"alice@{d.greylist}")
            assert grey["unknown"] is True
            assert grey["evidence"] == "temporary"
            assert grey["retry_after"] == 120  # the greylist retry delay
            assert await balance() == 10

            # Not cached: asking again probes again, and this greylisting server accepts a
            # re-probe: now conclusive, and charged.
            seen = sum(1 for b, a in lab.rcpt_log if b == "greylist" and a.startswith("alice@"))
            second = await unit(f"alice@{d.greylist}")
            again = sum(1 for b, a in lab.rcpt_log if b == "greylist" and a.startswith("alice@"))
            assert again > seen
            assert second["valid"] is True
            assert "retry_after" not in second
            assert await balance() == 9

            # One rule for both paths: a bare 550 (stock Exim) is unknown in a unit call and
            # in a batch where another address of the domain is accepted.
            bare = f"nobody@{d.plain550}"
            assert (await unit(bare))["evidence"] == "unspecified"
            batch = await _run_batch(client, [f"bob@{d.plain550}", bare])
            assert batch[f"bob@{d.plain550}"]["valid"] is True
            assert batch[bare]["unknown"] is True
            assert batch[bare]["evidence"] == "unspecified"


async def _run_batch(client: httpx.AsyncClient, addresses: list[str]) -> dict:  # type: ignore[type-arg]
    upload = await client.post(
        "/v1/batch",
        files={"file": ("l.txt", "\n".join(addresses).encode(), "text/plain")},
        data={"name": "one rule", "type": "email", "target_country": "US"},
    )
    path = f"/v1/batch/{upload.json()['batch_uuid']}"
    for wanted in ("ready_for_verification", "verification_done"):
        for _ in range(300):
            status = (await client.get(path)).json()["status"]
            if status == wanted:
                break
            await asyncio.sleep(0.1)
        assert status == wanted
        if wanted == "ready_for_verification":
            assert (await client.post(path)).json() == {"status": "ok"}
    export = await client.get(f"{path}/export", params={"format": "json"})
    return dict(export.json())
