"""Every documented response, validated against the reference's schemas."""

from __future__ import annotations

import pytest

from tests.api.helpers import Api
from tests.api.schemas import assert_details, assert_status_response, assert_valid
from tests.support.server import LiveServer


@pytest.fixture(scope="module")
def api(live_server: LiveServer, api_key: str) -> Api:
    return Api(live_server.base_url, api_key)


def test_upload_answer_shape(api: Api) -> None:
    body = api.upload("valid@example.com\n").json()
    assert set(body) == {"status", "batch_uuid", "created_at"}
    assert body["status"] == "ok"
    assert body["created_at"].endswith("Z")


@pytest.mark.parametrize("record_type", ["email", "phone"])
def test_status_and_details_in_every_state(api: Api, record_type: str) -> None:
    content = (
        "valid@example.com\ninvalid@example.com\nunknown@example.com\nnope\nvalid@example.com\n"
        if record_type == "email"
        else "+14155550100\n+14155550102\n4155550103\n12\n+14155550100\n"
    )
    batch_uuid = api.new_batch(content, type=record_type)
    first = api.status(batch_uuid)
    assert_status_response(first)
    details = api.client.get(f"/v1/batch/{batch_uuid}/details").json()
    assert_details(details)

    ready = api.wait_for(batch_uuid, "ready_for_verification")
    assert_status_response(ready)
    assert ready["found_content"] == {
        f"valid_{record_type}": 3,
        f"wrong_{record_type}": 1,
        f"duplicate_{record_type}": 1,
    }
    assert_details(api.client.get(f"/v1/batch/{batch_uuid}/details").json())

    assert api.client.post(f"/v1/batch/{batch_uuid}").json() == {"status": "ok"}
    done = api.wait_for(batch_uuid, "verification_done")
    assert_status_response(done)
    stats = done["stats"]
    assert stats["total_verification"] == 3
    assert stats["total_verification_duplicate"] == 1
    assert (
        stats["total_verification_valid"]
        + stats["total_verification_wrong"]
        + stats["total_verification_unknown"]
        == 3
    )
    final = api.client.get(f"/v1/batch/{batch_uuid}/details").json()
    assert_details(final)
    assert final["status"] == "verification_done"


def test_internal_error_variant_validates() -> None:
    assert_status_response({"status": "internal_error", "message": "boom"})
    with pytest.raises(AssertionError):
        assert_status_response({"status": "internal_error"})


def test_error_bodies_match_reference(api: Api, live_server: LiveServer) -> None:
    import httpx

    anonymous = httpx.get(f"{live_server.base_url}/v1/batch/00000000-0000-0000-0000-000000000000")
    assert anonymous.status_code == 401
    assert_valid("UnauthorizedResponse", anonymous.json())
    missing = api.client.get("/v1/batch/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert_valid("NotFoundResponse", missing.json())
    invalid = api.client.get("/v1/batch/not-a-uuid")
    assert invalid.status_code == 422
    assert_valid("HTTPValidationError", invalid.json())
    assert invalid.json()["detail"]
    early = api.new_batch("valid@example.com\n")
    not_done = api.client.get(f"/v1/batch/{early}/export", params={"format": "json"})
    assert not_done.status_code == 400
    assert_valid("BadRequestResponse", not_done.json())
    assert "message" in not_done.json()
