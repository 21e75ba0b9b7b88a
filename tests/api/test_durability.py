"""Crash recovery and concurrent launches: the database is the truth."""

from __future__ import annotations

import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

from tests.api.helpers import Api

RECORDS = 20_000


def test_kill_9_mid_verification_resumes_with_one_result_and_one_debit(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(APEXVERIFY_SANDBOX_LATENCY_MS="150", APEXVERIFY_VERIFY_CHUNK_SIZE="500")
    api = Api(server.base_url, server.create_account()[0])
    content = "\n".join(f"user{i}@example{i % 97}.com" for i in range(RECORDS))
    batch_uuid = api.ready(content)
    assert api.client.post(f"/v1/batch/{batch_uuid}").json() == {"status": "ok"}

    deadline = time.monotonic() + 60
    while True:
        body = api.status(batch_uuid)
        verified = body.get("progress", {}).get("verified", 0)
        if verified >= 1000:
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.05)
    assert body["status"] == "verification_ongoing"
    assert verified < RECORDS
    server.kill()

    server.start()
    done = api.wait_for(batch_uuid, "verification_done", timeout=120)
    assert done["stats"]["total_verification"] == RECORDS
    results = api.export_json(batch_uuid, include_statistics="false")
    assert len(results) == RECORDS

    db = sqlite3.connect(server.data_dir / "apexverify.db")
    pk = db.execute("SELECT pk FROM batches WHERE uuid = ?", (batch_uuid,)).fetchone()[0]
    per_record = db.execute(
        "SELECT COUNT(*), COUNT(verdict), COUNT(DISTINCT seq) FROM records WHERE batch_pk = ?",
        (pk,),
    ).fetchone()
    assert per_record == (RECORDS, RECORDS, RECORDS)
    debits = db.execute(
        "SELECT COUNT(*) FROM credit_ledger WHERE batch_uuid = ? AND kind = 'debit'",
        (batch_uuid,),
    ).fetchone()[0]
    assert debits == 1
    verified_counter = db.execute("SELECT verified FROM batches WHERE pk = ?", (pk,)).fetchone()
    assert verified_counter == (RECORDS,)


def test_twenty_concurrent_launches_against_a_balance_for_five(make_server) -> None:  # type: ignore[no-untyped-def]
    # Phone batches of a real (non-sandbox) account: offline analysis needs no network.
    # Unknown verdicts are not refunded here, so the balance must end at exactly 0.
    server = make_server(APEXVERIFY_REFUND_UNKNOWN="false")
    key, _ = server.create_account(sandbox=False, email_credits=0, phone_credits=10)
    api = Api(server.base_url, key)
    batches = [
        api.ready(
            f"+1415555{i:04d}\n+4420794{i:05d}\n",
            type="phone",
            use_account_cache="false",
            use_global_cache="false",
        )
        for i in range(20)
    ]
    assert all(
        api.client.get(f"/v1/batch/{b}/details").json()["found_cost"]["net_phone_cost"] == 2.0
        for b in batches
    )

    def launch(batch_uuid: str) -> int:
        return Api(server.base_url, key).client.post(f"/v1/batch/{batch_uuid}").status_code

    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(launch, batches))
    assert sorted(codes) == [200] * 5 + [402] * 15
    assert api.client.get("/v1/account/credits").json()["phone_credit"] == 0.0
    launched = [b for b, code in zip(batches, codes, strict=True) if code == 200]
    for batch_uuid in launched:
        api.wait_for(batch_uuid, "verification_done", timeout=60)
    for batch_uuid, code in zip(batches, codes, strict=True):
        if code == 402:
            assert api.status(batch_uuid)["status"] == "ready_for_verification"
    assert api.client.get("/v1/account/credits").json()["phone_credit"] == 0.0
    db = sqlite3.connect(server.data_dir / "apexverify.db")
    assert db.execute("SELECT COUNT(*) FROM credit_ledger WHERE kind = 'debit'").fetchone() == (5,)
