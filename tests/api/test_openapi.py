"""The served OpenAPI document is the contract: a valid OpenAPI 3.1 document, whose status
schema accepts exactly the documents the reference's accepts, with the reference's names and
operation id, every answer of every operation documented, and docs pages that need no CDN."""

from __future__ import annotations

import copy
import re
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from tests.api.schemas import openapi as reference
from tests.support.server import LiveServer

STATUS_PATH = "/v1/batch/{batch_uuid}"
STATUS_SCHEMA = "Batch_status_v1_batch__batch_uuid__get_Response_200"


@pytest.fixture(scope="module")
def served(live_server: LiveServer) -> dict[str, Any]:
    response = httpx.get(f"{live_server.base_url}/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def test_the_served_document_is_valid_openapi(served: dict[str, Any]) -> None:
    validate(copy.deepcopy(served))  # raises on the first violation


def _validator(document: dict[str, Any], name: str) -> Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return Draft202012Validator(schema)


EMAIL_CONTENT = {"valid_email": 9420, "wrong_email": 312, "duplicate_email": 268}
EMAIL_COST = {
    "total_email_cost": 9420,
    "net_email_cost": 7250.0,
    "email_cache_account_return": 850,
    "email_cache_global_return": 1320,
}
PHONE_CONTENT = {"valid_phone": 3, "wrong_phone": 1, "duplicate_phone": 0}
PHONE_COST = {
    "total_phone_cost": 3,
    "net_phone_cost": 2.5,
    "phone_cache_account_return": 1,
    "phone_cache_global_return": 0,
}
STATS = {
    "total_verification": 3,
    "total_verification_valid": 1,
    "total_verification_wrong": 1,
    "total_verification_unknown": 1,
    "total_verification_valid_perc": 33.33,
    "total_verification_cancelled": 0,  # an extension key: additional properties are allowed
}
STARTED = "2026-04-06T10:00:00Z"

# (document, valid by the reference?) for each variant, with the extension fields this
# server adds, and the ways a document can be wrong.
SAMPLES: list[tuple[dict[str, Any], bool]] = [
    ({"status": "parsing_content"}, True),
    ({"status": "parsing_content", "anything": 1}, True),
    (
        {
            "status": "ready_for_verification",
            "found_content": EMAIL_CONTENT,
            "found_cost": EMAIL_COST,
        },
        True,
    ),
    (
        {
            "status": "ready_for_verification",
            "found_content": PHONE_CONTENT,
            "found_cost": PHONE_COST,
        },
        True,
    ),
    ({"status": "ready_for_verification", "found_content": {}, "found_cost": EMAIL_COST}, False),
    ({"status": "ready_for_verification", "found_content": EMAIL_CONTENT}, False),
    (
        {
            "status": "ready_for_verification",
            "found_content": {**EMAIL_CONTENT, "valid_phone": 1},
            "found_cost": EMAIL_COST,
        },
        False,
    ),
    (
        {
            "status": "ready_for_verification",
            "found_content": EMAIL_CONTENT,
            "found_cost": {"total_email_cost": 1, "net_email_cost": 1.0},
        },
        False,
    ),
    (
        {
            "status": "verification_ongoing",
            "found_content": PHONE_CONTENT,
            "found_cost": PHONE_COST,
            "progress": {"verified": 1, "total": 3},
            "stall": {"reason": "MX silent", "since": STARTED, "retry_at": None},
            "execution_cost": 2.5,
            "refunded_credits": 0.0,
        },
        True,
    ),
    (
        {
            "status": "verification_ongoing",
            "found_content": EMAIL_CONTENT,
            "found_cost": EMAIL_COST,
            "stall": None,
        },
        True,
    ),
    (
        {
            "status": "verification_done",
            "found_content": EMAIL_CONTENT,
            "found_cost": EMAIL_COST,
            "stats": STATS,
            "execution_cost": 7250.0,
            "refunded_credits": 10.0,
            "cancelled": True,
            "cancelled_at": STARTED,
        },
        True,
    ),
    (
        {
            "status": "verification_done",
            "found_content": EMAIL_CONTENT,
            "found_cost": EMAIL_COST,
            "stats": {},
        },
        True,
    ),
    (
        {"status": "verification_done", "found_content": EMAIL_CONTENT, "found_cost": EMAIL_COST},
        False,
    ),
    (
        {
            "status": "verification_done",
            "found_content": EMAIL_CONTENT,
            "found_cost": EMAIL_COST,
            "stats": {"total_verification": "many"},
        },
        False,
    ),
    ({"status": "internal_error", "message": "Internal error while parsing."}, True),
    ({"status": "internal_error"}, False),
    ({"status": "internal_error", "message": 7}, False),
    ({"status": "cancelled"}, False),
    ({}, False),
    ([], False),
]


@pytest.mark.parametrize(("document", "expected"), SAMPLES)
def test_status_schema_agrees_with_the_reference(
    served: dict[str, Any], document: Any, expected: bool
) -> None:
    ours = _validator(served, STATUS_SCHEMA).is_valid(document)
    theirs = _validator(reference(), STATUS_SCHEMA).is_valid(document)
    assert (ours, theirs) == (expected, expected)


def test_status_operation_uses_the_reference_names(served: dict[str, Any]) -> None:
    ours = served["paths"][STATUS_PATH]["get"]
    theirs = reference()["paths"][STATUS_PATH]["get"]
    assert ours["operationId"] == theirs["operationId"] == "status-v-1-batch-batch-uuid-get"
    assert set(theirs["responses"]) <= set(ours["responses"])
    ok = ours["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": f"#/components/schemas/{STATUS_SCHEMA}"}
    status = served["components"]["schemas"][STATUS_SCHEMA]
    assert status["discriminator"]["propertyName"] == "status"
    assert len(status["oneOf"]) == 5
    # The names of the reference's oneOf and its parts (its error bodies are our one Error).
    names = {n for n in reference()["components"]["schemas"] if not n.endswith("Response")}
    names -= {"ValidationErrorLocItems", "ValidationErrorCtx"}  # inlined here
    assert names <= set(served["components"]["schemas"])


def test_variants_allow_additional_properties(served: dict[str, Any]) -> None:
    schemas = served["components"]["schemas"]
    for variant in schemas[STATUS_SCHEMA]["oneOf"]:
        name = variant["$ref"].rsplit("/", 1)[1]
        assert schemas[name].get("additionalProperties", True) is not False, name


def _operations(served: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(p, m, op) for p, ops in served["paths"].items() for m, op in ops.items()]


def test_every_operation_documents_its_errors(served: dict[str, Any]) -> None:
    schemas = served["components"]["schemas"]
    assert set(schemas["Error"]["required"]) == {"message"}
    assert set(schemas["HTTPValidationError"]["required"]) == {"detail", "message"}
    for path, method, operation in _operations(served):
        responses = operation["responses"]
        assert {"200", "401", "429", "500"} <= set(responses), (method, path)
        assert "Retry-After" in responses["429"]["headers"]
        for code, response in responses.items():
            if code == "200":
                continue
            schema = response["content"]["application/json"]["schema"]["$ref"]
            wanted = "HTTPValidationError" if code == "422" else ("Error", "UploadError")
            assert schema.rsplit("/", 1)[1] in wanted, (method, path, code)
        if operation.get("parameters") or operation.get("requestBody"):
            assert "422" in responses, (method, path)


@pytest.mark.parametrize(
    ("path", "method", "codes"),
    [
        ("/v1/batch", "post", {"400", "413", "422", "507"}),
        ("/v1/batch/{batch_uuid}", "post", {"402", "404", "422"}),
        ("/v1/batch/{batch_uuid}", "put", {"400", "404", "422"}),
        ("/v1/batch/{batch_uuid}/export", "get", {"400", "404", "422", "507"}),
        ("/v1/unit", "post", {"400", "402", "422"}),
        ("/v1/account/keys/{key_id}", "delete", {"404", "422"}),
    ],
)
def test_operations_document_the_statuses_they_give(
    served: dict[str, Any], path: str, method: str, codes: set[str]
) -> None:
    assert codes <= set(served["paths"][path][method]["responses"])


def test_bodies_are_typed(served: dict[str, Any]) -> None:
    schemas = served["components"]["schemas"]

    def body(path: str, method: str, media: str = "application/json") -> dict[str, Any]:
        ref = served["paths"][path][method]["requestBody"]["content"][media]["schema"]["$ref"]
        return dict(schemas[ref.rsplit("/", 1)[1]])

    put = body("/v1/batch/{batch_uuid}", "put")
    assert set(put["required"]) == {"type", "target_country"}
    assert {"target_audience", "use_global_cache", "remove_duplicate"} <= set(put["properties"])
    assert set(body("/v1/unit", "post")["required"]) == {"type", "unit"}
    upload = body("/v1/batch", "post", "multipart/form-data")
    assert set(upload["required"]) == {"file", "name", "type", "target_country"}
    assert "" in upload["properties"]["use_account_cache"]["enum"]  # empty: not given


def test_export_documents_every_content_type(served: dict[str, Any]) -> None:
    content = served["paths"]["/v1/batch/{batch_uuid}/export"]["get"]["responses"]["200"]
    assert set(content["content"]) == {
        "application/json",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "text/csv",  # the format=csv extension
    }


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(live_server: LiveServer, page: str) -> None:
    html = httpx.get(f"{live_server.base_url}{page}").text
    assert "/openapi.json" in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "https://" not in html  # no CDN, no web fonts
    assert assets
    for asset in assets:
        assert asset.startswith("/docs-assets/"), asset
        response = httpx.get(f"{live_server.base_url}{asset}")
        assert response.status_code == 200, asset
        assert len(response.content) > 1000, asset
