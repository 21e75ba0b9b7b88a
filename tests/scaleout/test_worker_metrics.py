"""A procrastinate worker serves its own Prometheus metrics (``apexverify worker --metrics-port``):
the SMTP replies its email engine received while verifying chunks against the loopback lab."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.api.test_email_batch_lab import _smtp_replies, _wait
from tests.labs.smtp_lab import email_lab
from tests.scaleout.conftest import Cluster
from tests.support.server import free_port


async def test_worker_metrics_count_the_smtp_replies_of_its_chunks(
    make_cluster: object, redis_url: str
) -> None:
    async with email_lab() as lab:
        d = lab.domains
        env = lab.server_env(
            # Redis: the worker's engine shares its per-MX caps (verify/email/redis_slots.py).
            redis_url=redis_url,
        )
        cluster: Cluster = make_cluster(**env)  # type: ignore[operator]
        # The lab serves from this event loop: start the processes off it.
        server = await asyncio.to_thread(cluster.add_server)
        metrics_port = free_port()
        await asyncio.to_thread(cluster.add_worker, 2, "--metrics-port", str(metrics_port))
        key, _ = await asyncio.to_thread(server.create_account, sandbox=False, email_credits=100)
        addresses = [f"alice@{d.rejects}", f"nobody@{d.rejects}", f"alice@{d.banner}"]
        async with httpx.AsyncClient(
            base_url=server.base_url, headers={"X-API-Key": key}, timeout=30
        ) as client:
            upload = await client.post(
                "/v1/batch",
                files={"file": ("l.txt", "\n".join(addresses).encode(), "text/plain")},
                data={"name": "lab", "type": "email", "target_country": "US"},
            )
            batch_uuid = upload.json()["batch_uuid"]
            await _wait(client, batch_uuid, "ready_for_verification")
            assert (await client.post(f"/v1/batch/{batch_uuid}")).json() == {"status": "ok"}
            await _wait(client, batch_uuid, "verification_done")
            api_metrics = (await client.get("/metrics")).text
            worker_metrics = await _scrape(f"http://127.0.0.1:{metrics_port}/metrics")

    # The worker verified; the API process only enqueued, so its counters stay at zero.
    for stage in ("greeting", "rcpt"):
        assert sum(_smtp_replies(api_metrics, stage).values()) == 0
    rcpt = _smtp_replies(worker_metrics, "rcpt")
    assert sum(rcpt.values()) == len(lab.rcpt_log), (rcpt, lab.rcpt_log, cluster.logs())
    assert rcpt["2xx"] >= 1  # alice@rejects
    assert rcpt["5xx"] >= 2  # the catch-all probe and nobody@rejects
    greeting = _smtp_replies(worker_metrics, "greeting")
    assert greeting["2xx"] >= 1
    assert greeting["5xx"] >= 1  # the banner host's 554
    assert _smtp_replies(worker_metrics, "mail")["2xx"] >= 1
    assert 'apexverify_records_verified_total{type="email",verdict="valid"}' in worker_metrics


async def _scrape(url: str) -> str:
    deadline = time.monotonic() + 10
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            try:
                return (await client.get(url)).text
            except httpx.HTTPError:
                assert time.monotonic() < deadline, f"no metrics at {url}"
                await asyncio.sleep(0.1)
