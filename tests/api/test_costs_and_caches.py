"""Pricing, the account and global caches, refunds and the credit ledger, end to end."""

from __future__ import annotations

import sqlite3

from tests.api.helpers import Api
from tests.support.server import LiveServer

# Offline phone analysis needs no network: these numbers are possible but in unallocated
# ranges (a conclusive `wrong`, cacheable), those are allocated (an inconclusive `unknown`).
UNALLOCATED = ["+12005550100", "+12005550101", "+12005550102", "+441100000000"]
ALLOCATED = ["+14155550100", "+6591234567"]


def _details(api: Api, batch_uuid: str) -> dict:
    return dict(api.client.get(f"/v1/batch/{batch_uuid}/details").json())


def test_account_cache_returns_and_net_cost(live_server: LiveServer) -> None:
    api = Api(live_server.base_url, live_server.create_account()[0])
    first = api.run("valid@example.com\ninvalid@example.com\nunknown@example.com\n")
    assert api.status(first)["found_cost"]["email_cache_account_return"] == 0

    # Same addresses (domain case differs) plus a new one: conclusive results are reused,
    # the inconclusive `unknown@` is verified again.
    second = api.ready(
        "valid@EXAMPLE.com\ninvalid@example.com\nunknown@example.com\nnew@example.com\n"
    )
    cost = _details(api, second)["found_cost"]
    assert cost == {
        "total_email_cost": 4,
        "net_email_cost": 3.0,  # 4 - 0.5 x 2 hits
        "email_cache_account_return": 2,
        "email_cache_global_return": 0,
    }
    api.client.post(f"/v1/batch/{second}")
    done = api.wait_for(second, "verification_done")
    assert done["stats"]["total_verification_account_cache"] == 2
    assert api.export_json(second)["valid@EXAMPLE.com"]["valid"] is True

    third = api.ready("valid@example.com\n", use_account_cache="false")
    assert _details(api, third)["found_cost"]["email_cache_account_return"] == 0


def test_global_cache_is_shared_anonymously_and_optional(live_server: LiveServer) -> None:
    feeder_key, _ = live_server.create_account(sandbox=False, phone_credits=100)
    feeder = Api(live_server.base_url, feeder_key)
    feeder.run("\n".join(UNALLOCATED + ALLOCATED), type="phone")

    reader = Api(live_server.base_url, live_server.create_account(sandbox=False)[0])
    batch_uuid = reader.ready("\n".join(UNALLOCATED + ALLOCATED), type="phone")
    cost = _details(reader, batch_uuid)["found_cost"]
    assert cost["phone_cache_global_return"] == len(UNALLOCATED)
    assert cost["phone_cache_account_return"] == 0
    assert cost["net_phone_cost"] == len(UNALLOCATED + ALLOCATED) - 0.5 * len(UNALLOCATED)

    opted_out = reader.ready("\n".join(UNALLOCATED), type="phone", use_global_cache="false")
    assert _details(reader, opted_out)["found_cost"]["phone_cache_global_return"] == 0

    db = sqlite3.connect(live_server.data_dir / "apexverify.db")
    stored = db.execute(
        "SELECT key_hash, result FROM result_cache WHERE account_id = ''"
    ).fetchall()
    assert len(stored) == len(UNALLOCATED)
    for key_hash, result in stored:
        assert len(key_hash) == 16
        for number in UNALLOCATED + ALLOCATED:
            assert number not in result
            assert number.lstrip("+") not in result


def test_sandbox_neither_reads_nor_feeds_the_global_cache(live_server: LiveServer) -> None:
    sandbox = Api(live_server.base_url, live_server.create_account(sandbox=True)[0])
    sandbox.run("\n".join(UNALLOCATED), type="phone")
    probe = Api(live_server.base_url, live_server.create_account(sandbox=False)[0])
    fresh = ["+12005550199"]
    probe_uuid = probe.ready("\n".join(fresh), type="phone")
    assert _details(probe, probe_uuid)["found_cost"]["phone_cache_global_return"] == 0
    sandbox_uuid = sandbox.ready("\n".join(UNALLOCATED), type="phone")
    assert _details(sandbox, sandbox_uuid)["found_cost"]["phone_cache_global_return"] == 0


def test_debit_refund_of_unknowns_and_ledger(live_server: LiveServer) -> None:
    key, account_id = live_server.create_account(sandbox=False, email_credits=0, phone_credits=10)
    api = Api(live_server.base_url, key)
    batch_uuid = api.run(
        "\n".join(["+12005550150", *ALLOCATED]),
        type="phone",
        use_global_cache="false",
        use_account_cache="false",
    )
    done = api.status(batch_uuid)
    assert done["stats"]["total_verification_unknown"] == 2
    assert done["execution_cost"] == 3.0
    assert done["refunded_credits"] == 2.0
    assert api.client.get("/v1/account/credits").json()["phone_credit"] == 10 - 3 + 2
    db = sqlite3.connect(live_server.data_dir / "apexverify.db")
    ledger = db.execute(
        "SELECT kind, amount_milli FROM credit_ledger WHERE account_id = ? ORDER BY id",
        (account_id,),
    ).fetchall()
    assert ledger == [("topup", 10_000), ("debit", -3000), ("refund", 2000)]


def test_wrong_and_duplicate_rows_are_kept_when_asked_and_never_charged(
    live_server: LiveServer,
) -> None:
    key, _ = live_server.create_account(sandbox=False, email_credits=0, phone_credits=2)
    api = Api(live_server.base_url, key)
    content = "\n".join(["+12005550160", "+1 200 555 0160", "not a number", "+12005550160"])
    batch_uuid = api.ready(
        content,
        type="phone",
        remove_duplicate="false",
        remove_wrong_phone_format="false",
        use_global_cache="false",
    )
    details = _details(api, batch_uuid)
    assert details["found_content"] == {"valid_phone": 1, "wrong_phone": 1, "duplicate_phone": 2}
    assert details["found_cost"]["total_phone_cost"] == 1
    api.client.post(f"/v1/batch/{batch_uuid}")
    api.wait_for(batch_uuid, "verification_done")
    results = api.export_json(batch_uuid, include_statistics="false")
    # The verbatim repeat shares one key; the reformatted duplicate has its own.
    assert set(results) == {"+12005550160", "+1 200 555 0160", "not a number"}
    assert results["+1 200 555 0160"]["wrong"] is True
    assert results["+1 200 555 0160"]["is_syntax_error"] is False
    assert results["not a number"]["is_syntax_error"] is True
    summary = api.export_json(batch_uuid, include_details="false", include_statistics="false")
    assert summary["not a number"] == {
        "phone": "not a number",
        "valid": False,
        "wrong": True,
        "unknown": False,
    }
