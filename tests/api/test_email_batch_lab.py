"""A full email batch through the API (real account) against the loopback DNS + SMTP lab."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.labs.smtp_lab import email_lab


async def test_email_batch_reaches_done_with_lab_verdicts(make_server) -> None:  # type: ignore[no-untyped-def]
    async with email_lab() as lab:
        d = lab.domains
        env = lab.server_env(
            smtp_greylist_retry_seconds=1,
        )
        server = make_server(**env)
        key, _ = server.create_account(sandbox=False, email_credits=100)
        expected = {
            f"alice@{d.rejects}": "valid",
            f"nobody@{d.rejects}": "wrong",
            f"alice@{d.greylist}": "valid",  # 451 first, 250 on the delayed re-probe
            f"alice@{d.catchall}": "unknown",
            f"alice@{d.firstdown}": "valid",
            f"alice@{d.nullmx}": "wrong",
            f"alice@{d.nxdomain}": "wrong",
            f"alice@{d.private}": "unknown",  # MX on a private address: never contacted
            f"alice@{d.silent}": "unknown",
        }
        async with httpx.AsyncClient(
            base_url=server.base_url, headers={"X-API-Key": key}, timeout=30
        ) as client:
            upload = await client.post(
                "/v1/batch",
                files={"file": ("l.txt", "\n".join(expected).encode(), "text/plain")},
                data={"name": "lab", "type": "email", "target_country": "US"},
            )
            batch_uuid = upload.json()["batch_uuid"]
            status = await _wait(client, batch_uuid, "ready_for_verification")
            assert (await client.post(f"/v1/batch/{batch_uuid}")).json() == {"status": "ok"}
            status = await _wait(client, batch_uuid, "verification_done")
            export = await client.get(
                f"/v1/batch/{batch_uuid}/export",
                params={"format": "json", "include_statistics": "false"},
            )
            results = export.json()
            metrics = (await client.get("/metrics")).text
        for address, verdict in expected.items():
            row = results[address]
            assert row[verdict] is True, (address, row)
        assert results[f"alice@{d.catchall}"]["is_catch_all"] is True
        assert results[f"nobody@{d.rejects}"]["smtp_enhanced_code"] == "5.1.1"
        assert status["stats"]["total_verification"] == len(expected)
        assert not lab.data_commands
        # /metrics counts every SMTP reply the engine received, by class and stage: as many
        # RCPT replies as the lab's servers got RCPT commands (probes and re-probes included).
        rcpt = _smtp_replies(metrics, "rcpt")
        assert sum(rcpt.values()) == len(lab.rcpt_log), (rcpt, lab.rcpt_log)
        assert rcpt["5xx"] >= 1  # nobody@rejects
        assert rcpt["4xx"] >= 1  # the greylisted first attempt
        # One 220 greeting and one 250 EHLO per connection the lab's servers accepted (the
        # silent server never says a word); a MAIL FROM per transaction.
        greeted = sum(n for name, n in lab.connections.items() if name != "silent")
        assert greeted >= 3
        assert _smtp_replies(metrics, "greeting") == {**_NONE, "2xx": greeted}
        assert _smtp_replies(metrics, "ehlo") == {**_NONE, "2xx": greeted}
        assert _smtp_replies(metrics, "mail")["2xx"] >= 3
        all_2xx = sum(_smtp_replies(metrics, stage)["2xx"] for stage in _STAGES)
        assert all_2xx >= 2 * greeted + 3 + rcpt["2xx"]
        assert rcpt["2xx"] >= 3  # alice@rejects, alice@greylist (re-probe), alice@firstdown


_NONE = {"2xx": 0.0, "3xx": 0.0, "4xx": 0.0, "5xx": 0.0}
_STAGES = ("greeting", "ehlo", "helo", "starttls", "mail", "rcpt", "rset", "quit")


def _smtp_replies(metrics: str, stage: str) -> dict[str, float]:
    counts = dict(_NONE)
    for line in metrics.splitlines():
        if line.startswith("apexverify_smtp_replies_total{") and f'stage="{stage}"' in line:
            reply_class = line.split('reply_class="', 1)[1][:3]
            counts[reply_class] = float(line.rsplit(" ", 1)[1])
    return counts


async def _wait(client: httpx.AsyncClient, batch_uuid: str, wanted: str) -> dict:
    deadline = time.monotonic() + 60
    while True:
        body = (await client.get(f"/v1/batch/{batch_uuid}")).json()
        if body["status"] == wanted:
            return dict(body)
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.1)
