"""401 / 402 / 404 / 422 / 429 and the isolation of accounts."""

from __future__ import annotations

import httpx
import pytest

from tests.api.helpers import Api
from tests.support.server import LiveServer

EMAILS = "valid@example.com\ninvalid@example.com\n"


@pytest.fixture(scope="module")
def api(live_server: LiveServer, api_key: str) -> Api:
    return Api(live_server.base_url, api_key)


def endpoints(batch_uuid: str) -> list[tuple[str, str, dict]]:
    return [
        ("GET", f"/v1/batch/{batch_uuid}", {}),
        ("GET", f"/v1/batch/{batch_uuid}/details", {}),
        ("PUT", f"/v1/batch/{batch_uuid}", {"json": {"type": "email", "target_country": "US"}}),
        ("PATCH", f"/v1/batch/{batch_uuid}", {}),
        ("POST", f"/v1/batch/{batch_uuid}", {}),
        ("GET", f"/v1/batch/{batch_uuid}/export", {"params": {"format": "json"}}),
        ("DELETE", f"/v1/batch/{batch_uuid}", {}),
    ]


def test_missing_wrong_and_revoked_keys_are_401(live_server: LiveServer, api: Api) -> None:
    base = live_server.base_url
    for headers in ({}, {"X-API-Key": "apx_not-a-key"}, {"X-Api-Key": ""}):
        response = httpx.get(f"{base}/v1/account/credits", headers=headers)
        assert response.status_code == 401
        assert response.json() == {"message": "Unauthorized"}
        assert "X-RateLimit-Limit" in response.headers

    key, account_id = live_server.create_account()
    # Both spellings of the header work.
    assert httpx.get(f"{base}/v1/account/credits", headers={"X-Api-Key": key}).status_code == 200
    second = httpx.post(
        f"{base}/v1/account/keys", headers={"X-API-Key": key}, json={"label": "ci"}
    ).json()
    owner = Api(base, second["api_key"])
    batch_uuid = owner.ready("valid@example.com\n" * 1 + "role@example.com\n")
    listed = httpx.get(f"{base}/v1/account/keys", headers={"X-API-Key": key}).json()["keys"]
    assert {k["label"] for k in listed} == {"default", "ci"}
    assert all("api_key" not in k for k in listed)
    live_server.cli("key", "revoke", "--account", account_id, second["id"])
    assert owner.client.get(f"/v1/batch/{batch_uuid}").status_code == 401
    # The first key still works and still sees the batch.
    assert httpx.get(f"{base}/v1/batch/{batch_uuid}", headers={"X-API-Key": key}).status_code == 200


def test_another_accounts_batch_is_404_everywhere(live_server: LiveServer, api: Api) -> None:
    batch_uuid = api.run(EMAILS)
    other = Api(live_server.base_url, live_server.create_account()[0])
    for method, path, kwargs in endpoints(batch_uuid):
        response = other.client.request(method, path, **kwargs)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json() == {"message": "Batch not found."}
    # Nothing happened to it.
    assert api.status(batch_uuid)["status"] == "verification_done"
    assert len(api.export_json(batch_uuid, include_statistics="false")) == 2


def test_unknown_batch_is_404_and_malformed_id_is_422(api: Api) -> None:
    for method, path, kwargs in endpoints("6f1c1c52-0000-4000-8000-000000000000"):
        assert api.client.request(method, path, **kwargs).status_code == 404
    for method, path, kwargs in endpoints("not-a-uuid"):
        response = api.client.request(method, path, **kwargs)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"][-1] == "batch_uuid"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"target_country": "US"}, "type"),
        ({"type": "fax", "target_country": "US"}, "type"),
        ({"type": "email"}, "target_country"),
        ({"type": "email", "target_country": "ZZ"}, "target_country"),
        ({"type": "email", "target_country": "US", "target_audience": 24}, "target_audience"),
        ({"type": "email", "target_country": "US", "target_audience": 0}, "target_audience"),
        (
            {"type": "email", "target_country": "US", "target_market_industry": 116},
            "target_market_industry",
        ),
        ({"type": "email", "target_country": "US", "target_objective": 17}, "target_objective"),
        (
            {"type": "email", "target_country": "US", "max_account_cache_backoff": 181},
            "max_account_cache_backoff",
        ),
        (
            {"type": "email", "target_country": "US", "max_global_cache_backoff": 0},
            "max_global_cache_backoff",
        ),
        (
            {"type": "email", "target_country": "US", "use_global_cache": "perhaps"},
            "use_global_cache",
        ),
    ],
)
def test_put_validates_every_range(api: Api, body: dict, field: str) -> None:
    batch_uuid = api.ready(EMAILS)
    response = api.client.put(f"/v1/batch/{batch_uuid}", json=body)
    assert response.status_code == 422
    assert field in response.json()["detail"][0]["loc"]
    assert api.status(batch_uuid)["status"] == "ready_for_verification"


def test_put_accepts_codes_as_strings_and_reparses(api: Api) -> None:
    batch_uuid = api.ready(EMAILS + "valid@example.com\n")
    assert api.status(batch_uuid)["found_content"]["duplicate_email"] == 1
    response = api.client.put(
        f"/v1/batch/{batch_uuid}",
        json={
            "type": "email",
            "target_country": "sg",
            "target_audience": "17",
            "target_market_industry": "46",
            "target_objective": "6",
            "remove_duplicate": False,
        },
    )
    assert response.json() == {"message": "Success"}
    api.wait_for(batch_uuid, "ready_for_verification")
    details = api.client.get(f"/v1/batch/{batch_uuid}/details").json()
    assert details["parameters"]["target_audience"] == 17
    assert details["parameters"]["target_country"] == "SG"
    assert api.client.patch(f"/v1/batch/{batch_uuid}").json() == {"status": "ok"}
    assert api.wait_for(batch_uuid, "ready_for_verification")["found_content"] == {
        "valid_email": 2,
        "wrong_email": 0,
        "duplicate_email": 1,
    }


def test_launched_batch_refuses_reconfiguration(api: Api) -> None:
    batch_uuid = api.run(EMAILS)
    put = api.client.put(f"/v1/batch/{batch_uuid}", json={"type": "email", "target_country": "US"})
    assert put.status_code == 400
    assert api.client.patch(f"/v1/batch/{batch_uuid}").status_code == 400
    assert api.client.post(f"/v1/batch/{batch_uuid}").json() == {
        "status": "verification_already_done"
    }


def test_launch_with_short_balance_is_402_and_changes_nothing(live_server: LiveServer) -> None:
    key, _account_id = live_server.create_account(sandbox=False, email_credits=1)
    api = Api(live_server.base_url, key)
    batch_uuid = api.ready(
        "a@example.com\nb@example.com\nc@example.com\n",
        use_global_cache="false",
        use_account_cache="false",
    )
    response = api.client.post(f"/v1/batch/{batch_uuid}")
    assert response.status_code == 402
    assert "credits" in response.json()["message"]
    assert api.status(batch_uuid)["status"] == "ready_for_verification"
    assert api.client.get("/v1/account/credits").json() == {
        "email_credit": 1.0,
        "phone_credit": 1000.0,
    }


def test_rate_limit_headers_and_429(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(APEXVERIFY_RATE_LIMIT_PER_MINUTE="5")
    key, _ = server.create_account()
    api = Api(server.base_url, key)
    seen = []
    for _ in range(5):
        response = api.client.get("/v1/account/credits")
        assert response.status_code == 200
        seen.append(
            (response.headers["X-RateLimit-Remaining"], response.headers["X-RateLimit-Used"])
        )
        assert response.headers["X-RateLimit-Limit"] == "5"
    assert seen[0] == ("4", "1")
    assert seen[-1] == ("0", "5")
    limited = api.client.get("/v1/account/credits")
    assert limited.status_code == 429
    assert limited.json() == {"message": "Too Many Requests"}
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    # Another key has its own budget.
    other = Api(server.base_url, server.create_account()[0])
    assert other.client.get("/v1/account/credits").status_code == 200


def test_list_is_newest_first_with_paging_and_filters(live_server: LiveServer) -> None:
    api = Api(live_server.base_url, live_server.create_account()[0])
    uuids = [api.new_batch(EMAILS, name=f"batch {i}") for i in range(3)]
    page = api.client.get("/v1/batch", params={"limit": 2}).json()
    assert page["total"] == 3
    assert [b["batch_uuid"] for b in page["batches"]] == uuids[::-1][:2]
    rest = api.client.get("/v1/batch", params={"limit": 2, "offset": 2}).json()
    assert [b["batch_uuid"] for b in rest["batches"]] == [uuids[0]]
    future = api.client.get("/v1/batch", params={"created_after": "2999-01-01T00:00:00Z"})
    assert future.json()["batches"] == []
    assert api.client.get("/v1/batch", params={"limit": 0}).status_code == 422
    assert api.client.get("/v1/batch", params={"created_after": "yesterday"}).status_code == 422


def test_delete_removes_batch_and_file(live_server: LiveServer) -> None:
    api = Api(live_server.base_url, live_server.create_account()[0])
    batch_uuid = api.run(EMAILS)
    upload = live_server.data_dir / "var" / "uploads" / f"{batch_uuid}.txt"
    assert upload.exists()
    assert api.client.delete(f"/v1/batch/{batch_uuid}").json() == {"message": "Deleted"}
    assert not upload.exists()
    assert api.client.get(f"/v1/batch/{batch_uuid}").status_code == 404
    assert api.client.delete(f"/v1/batch/{batch_uuid}").status_code == 404
