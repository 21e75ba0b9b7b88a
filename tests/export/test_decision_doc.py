"""The decision tables of docs/export.md are the code's (``export/decisions.py``): parsed
from the document, compared row by row, so neither can change without the other; and the
mapping they describe, checked on real result objects."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from apexverify.export.decisions import (
    EMAIL_DECISIONS,
    PHONE_DECISIONS,
    decision,
    parse_keep,
)
from apexverify.verify.base import EmailResult, PhoneResult

EXPORT_MD = Path(__file__).resolve().parents[2] / "docs" / "export.md"


def _doc_table(record_type: str) -> tuple[tuple[str, str | None, str], ...]:
    text = EXPORT_MD.read_text()
    found = re.search(
        rf"<!-- decisions:{record_type} -->\n(.*?)<!-- /decisions:{record_type} -->", text, re.S
    )
    assert found, f"no decisions:{record_type} table in docs/export.md"
    lines = [line for line in found.group(1).splitlines() if line.startswith("|")]
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["verdict", "quality", "decision"]
    rows = []
    for line in lines[2:]:
        verdict, quality, outcome = (c.strip() for c in line.strip("|").split("|"))
        rows.append((verdict, None if quality == "any" else quality, outcome))
    return tuple(rows)


@pytest.mark.parametrize(
    ("record_type", "table"), [("email", EMAIL_DECISIONS), ("phone", PHONE_DECISIONS)]
)
def test_the_documented_table_is_the_code_table(
    record_type: str, table: tuple[tuple[str, str | None, str], ...]
) -> None:
    assert _doc_table(record_type) == table


def test_decisions_of_result_objects() -> None:
    def email(**kw: object) -> dict[str, object]:
        return EmailResult(**kw).to_dict()  # type: ignore[arg-type]

    assert (
        decision(
            "email", email(valid=True, wrong=False, unknown=False, quality="good", result="ok")
        )
        == "deliverable"
    )
    role = email(valid=True, wrong=False, unknown=False, quality="risky", result="ok", is_role=True)
    assert decision("email", role) == "risky"
    catch_all = email(valid=False, wrong=False, unknown=True, quality="risky", result="ok")
    assert decision("email", catch_all) == "risky"
    assert (
        decision(
            "email",
            email(valid=False, wrong=False, unknown=True, quality="unknown", result="unknown"),
        )
        == "unknown"
    )
    assert decision("email", EmailResult.syntax_error().to_dict()) == "undeliverable"
    assert decision("phone", PhoneResult.syntax_error().to_dict()) == "undeliverable"
    live = PhoneResult(valid=True, wrong=False, unknown=False, type="mobile", status="live")
    assert decision("phone", live.to_dict()) == "deliverable"
    assert decision("email", None) is None


def test_parse_keep() -> None:
    assert parse_keep("deliverable, Risky") == frozenset({"deliverable", "risky"})
    assert parse_keep(None) is None
    assert parse_keep(",") is None
    with pytest.raises(ValueError, match="use one or more of deliverable, risky"):
        parse_keep("good")
