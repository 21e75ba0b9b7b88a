"""Validators built from the OpenAPI document in batch-status-reference.md, plus the shapes
of the workflow guide (details, upload, launch) written out as JSON Schema."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

REFERENCE = Path(__file__).parents[2] / "docs" / "spec" / "batch-status-reference.md"


@cache
def openapi() -> dict[str, Any]:
    text = REFERENCE.read_text()
    block = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)  # type: ignore[union-attr]
    document = dict(yaml.safe_load(block))
    # As published, the two parsing summaries have no required keys, so any object matches
    # both and every `oneOf` over them fails. Closing them (no other keys) keeps the oneOf
    # meaningful: a summary must be exactly the email one or exactly the phone one.
    for name in ("BatchSetupVerificationParsingEmail", "BatchSetupVerificationParsingPhone"):
        document["components"]["schemas"][name]["additionalProperties"] = False
    return document


def validator(schema_name: str) -> Draft202012Validator:
    document = openapi()
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    return Draft202012Validator(schema)


def assert_valid(schema_name: str, body: Any) -> None:
    errors = list(validator(schema_name).iter_errors(body))
    assert not errors, f"{schema_name}: {[e.message for e in errors]} in {body}"


def assert_status_response(body: Any) -> None:
    """Exactly one variant of the oneOf must match (jsonschema enforces 'exactly')."""
    assert_valid("Batch_status_v1_batch__batch_uuid__get_Response_200", body)


_COMMON = {
    "batch_uuid": {"type": "string", "format": "uuid"},
    "name": {"type": "string"},
    "status": {"type": "string"},
    "created_at": {"type": "string"},
    "updated_at": {"type": "string"},
    "parameters": {
        "type": "object",
        "required": ["type", "target_country"],
        "properties": {"type": {"enum": ["email", "phone"]}, "target_country": {"type": "string"}},
    },
}


def details_schema(status: str) -> dict[str, Any]:
    components = openapi()["components"]
    required = ["batch_uuid", "name", "status", "created_at", "updated_at", "parameters"]
    props: dict[str, Any] = dict(_COMMON)
    props["status"] = {"const": status}
    if status in ("ready_for_verification", "verification_ongoing", "verification_done"):
        required += ["found_content", "found_cost"]
        props["found_content"] = {
            "oneOf": [
                {"$ref": "#/components/schemas/BatchSetupVerificationParsingEmail"},
                {"$ref": "#/components/schemas/BatchSetupVerificationParsingPhone"},
            ]
        }
        props["found_cost"] = {
            "oneOf": [
                {"$ref": "#/components/schemas/BatchSetupVerificationCostEmail"},
                {"$ref": "#/components/schemas/BatchSetupVerificationCostPhone"},
            ]
        }
    if status == "verification_done":
        required.append("stats")
        props["stats"] = {"$ref": "#/components/schemas/VerificationStats"}
    return {"type": "object", "required": required, "properties": props, "components": components}


def assert_details(body: Any) -> None:
    errors = list(Draft202012Validator(details_schema(body["status"])).iter_errors(body))
    assert not errors, [e.message for e in errors]
