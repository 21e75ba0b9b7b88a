"""POST /v1/unit: one value in real time, the same result object as one export row."""

from __future__ import annotations

import pytest

from tests.api.helpers import Api
from tests.support.server import LiveServer


@pytest.fixture(scope="module")
def api(live_server: LiveServer, api_key: str) -> Api:
    return Api(live_server.base_url, api_key)


def test_unit_email_matches_an_export_row(api: Api) -> None:
    unit = api.client.post("/v1/unit", json={"type": "email", "unit": " role@example.com "})
    assert unit.status_code == 200
    batch_uuid = api.run("role@example.com\n")
    row = api.export_json(batch_uuid)["role@example.com"]
    assert unit.json() == row


def test_unit_phone_national_form_and_codes_as_strings(api: Api) -> None:
    body = {
        "type": "phone",
        "unit": "9123 4560",
        "target_country": "SG",
        "target_audience": "3",
        "use_global_cache": "false",
    }
    result = api.client.post("/v1/unit", json=body).json()
    assert result["phone"] == "9123 4560"
    assert (result["valid"], result["status"], result["type"]) == (True, "live", "mobile")


def test_unit_syntax_error_is_free_and_flagged(live_server: LiveServer) -> None:
    key, _ = live_server.create_account(sandbox=False, email_credits=0)
    api = Api(live_server.base_url, key)
    result = api.client.post("/v1/unit", json={"type": "email", "unit": "not-an-email"}).json()
    assert result["is_syntax_error"] is True
    assert result["wrong"] is True


def test_unit_without_credits_is_402(live_server: LiveServer) -> None:
    key, _ = live_server.create_account(sandbox=False, phone_credits=0)
    api = Api(live_server.base_url, key)
    response = api.client.post("/v1/unit", json={"type": "phone", "unit": "+12005550100"})
    assert response.status_code == 402
    assert response.json()["message"]


def test_unit_charges_caches_and_refunds(live_server: LiveServer) -> None:
    key, _ = live_server.create_account(sandbox=False, email_credits=0, phone_credits=10)
    api = Api(live_server.base_url, key)
    # Unallocated range: a conclusive `wrong` decided offline, charged 1, then cached.
    first = api.client.post("/v1/unit", json={"type": "phone", "unit": "+12005550177"}).json()
    assert first["wrong"] is True
    assert api.client.get("/v1/account/credits").json()["phone_credit"] == 9.0
    again = api.client.post("/v1/unit", json={"type": "phone", "unit": "+1 200 555 0177"}).json()
    assert again["phone"] == "+1 200 555 0177"
    assert again["wrong"] is True
    assert api.client.get("/v1/account/credits").json()["phone_credit"] == 8.5  # cache hit
    # Allocated range without a live lookup: `unknown`, refunded.
    unknown = api.client.post("/v1/unit", json={"type": "phone", "unit": "+14155550100"}).json()
    assert unknown["unknown"] is True
    assert api.client.get("/v1/account/credits").json()["phone_credit"] == 8.5


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"type": "email"},
        {"type": "fax", "unit": "x"},
        {"type": "email", "unit": ""},
        {"type": "phone", "unit": "1", "target_country": "XX"},
        {"type": "email", "unit": "a" * 600},
    ],
)
def test_unit_validation_is_422(api: Api, body: dict) -> None:
    response = api.client.post("/v1/unit", json=body)
    assert response.status_code == 422
    assert response.json()["detail"]
