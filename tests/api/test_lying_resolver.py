"""A resolver that answers NXDOMAIN for every name (firewalled or split-horizon DNS), on a
live server: /readyz says so, a launched batch gets no `wrong` verdict and feeds no cache
while it lies, and the same batch finishes with the right verdicts once it answers again.
Loopback DNS + SMTP lab; the batch runner re-probes deferred records every second."""

from __future__ import annotations

import sqlite3
from typing import Any

import httpx

from tests.api.helpers import until
from tests.labs.smtp_lab import EmailLab, email_lab
from tests.support.server import LiveServer

CANARIES = "canaries gmail.com, outlook.com, yahoo.com answered NXDOMAIN"


def _expected(lab: EmailLab) -> dict[str, str]:
    d = lab.domains
    return {
        f"alice@{d.rejects}": "valid",
        f"nobody@{d.rejects}": "wrong",
        f"alice@{d.nxdomain}": "wrong",
        f"john.doe@{d.free}": "wrong",  # gmail.com of the lab: the rejects server
        f"bob@{d.free}": "valid",
    }


def _cache_rows(server: LiveServer) -> int:
    with sqlite3.connect(server.data_dir / "apexverify.db") as db:
        return int(db.execute("SELECT COUNT(*) FROM result_cache").fetchone()[0])


def _gauge(metrics: str, prefix: str) -> float | None:
    """The value of the one sample whose line starts with ``prefix`` (name and labels), None
    before the sample exists (a counter never incremented)."""
    lines = [line for line in metrics.splitlines() if line.startswith(prefix)]
    assert len(lines) <= 1, lines
    return float(lines[0].rsplit(" ", 1)[1]) if lines else None


async def test_lying_resolver_is_not_ready_defers_the_batch_then_verdicts_come(make_server) -> None:  # type: ignore[no-untyped-def]
    async with email_lab() as lab:
        env = lab.server_env(
            dns_canary_interval_seconds=0.2,
            smtp_greylist_retry_seconds=1,
            max_verify_attempts=2,  # deferrals go on past it
        )
        server: LiveServer = make_server(**env)
        key, _ = server.create_account(sandbox=False, email_credits=100)
        expected = _expected(lab)
        async with httpx.AsyncClient(
            base_url=server.base_url, headers={"X-API-Key": key}, timeout=30
        ) as client:
            honest = await client.get("/readyz")
            assert honest.status_code == 200, honest.text
            assert honest.json()["environment"]["dns"]["ok"] is True
            assert honest.json()["environment"]["smtp_outbound"]["reason"] == (
                "no recent SMTP attempts"
            )

            lab.dns.lying = True
            ready = await until(lambda: client.get("/readyz"), lambda r: r.status_code == 503)
            dns = ready.json()["environment"]["dns"]
            assert ready.json()["status"] == "not_ready"
            assert dns["ok"] is False
            assert dns["reason"].startswith(f"DNS looks unhealthy: {CANARIES}")

            # The reported incident: john.doe@gmail.com came back wrong/bad/invalid, charged.
            unit = await client.post(
                "/v1/unit", json={"type": "email", "unit": f"john.doe@{lab.domains.free}"}
            )
            body = unit.json()
            assert (body["wrong"], body["unknown"], body["evidence"]) == (
                False,
                True,
                "dns_unhealthy",
            ), body
            assert body["retry_after"] >= 1
            credits = (await client.get("/v1/account/credits")).json()["email_credit"]
            assert credits == 100  # refunded in full

            batch_uuid = await _launch(client, list(expected))
            path = f"/v1/batch/{batch_uuid}"

            async def scrape() -> str:
                return (await client.get("/metrics")).text

            # Every record deferred at least twice: past max_verify_attempts, still no verdict.
            retried = 'apexverify_records_retry_scheduled_total{type="email"}'
            metrics = await until(scrape, lambda m: (_gauge(m, retried) or 0) >= 2 * len(expected))
            status = (await client.get(path)).json()
            assert status["status"] == "verification_ongoing"
            assert status["progress"]["verified"] == 0
            assert _cache_rows(server) == 0
            assert _gauge(metrics, 'apexverify_environment_healthy{check="dns"}') == 0.0
            assert _gauge(metrics, 'apexverify_dns_answer_share{answer="nxdomain"}') == 1.0
            assert 'apexverify_environment_healthy{check="smtp_outbound"} 1.0' in metrics
            assert not lab.connections  # no SMTP on the word of a lying resolver

            lab.dns.lying = False
            await until(lambda: _status(client, path), lambda s: s == "verification_done")
            export = await client.get(f"{path}/export", params={"format": "json"})
            recovered = await client.get("/readyz")
            metrics = await scrape()
        results = export.json()
        assert {address: _verdict(results[address]) for address in expected} == expected
        assert _cache_rows(server) > 0  # conclusive verdicts, decided on honest answers
        assert recovered.status_code == 200, recovered.text
        assert _gauge(metrics, 'apexverify_environment_healthy{check="dns"}') == 1.0
    log = server.log_tail(400)
    assert log.count("environment check dns turned unhealthy") == 1, log
    assert log.count("environment check dns recovered") == 1, log


async def _launch(client: httpx.AsyncClient, addresses: list[str]) -> str:
    upload = await client.post(
        "/v1/batch",
        files={"file": ("l.txt", "\n".join(addresses).encode(), "text/plain")},
        data={"name": "lying", "type": "email", "target_country": "US"},
    )
    batch_uuid = str(upload.json()["batch_uuid"])
    path = f"/v1/batch/{batch_uuid}"
    await until(lambda: _status(client, path), lambda s: s == "ready_for_verification")
    assert (await client.post(path)).json() == {"status": "ok"}
    return batch_uuid


async def _status(client: httpx.AsyncClient, path: str) -> str:
    return str((await client.get(path)).json()["status"])


def _verdict(row: dict[str, Any]) -> str:
    [verdict] = [name for name in ("valid", "wrong", "unknown") if row[name] is True]
    return verdict
