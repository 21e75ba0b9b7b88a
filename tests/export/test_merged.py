"""The merged-back table and the CSV writer, without a database: the join of original rows
with results by seq, name collisions, padding, filters, and the CSV dialect."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from apexverify.export.csv_export import stream_csv
from apexverify.export.filters import ResultFilter
from apexverify.export.merged import merge_rows, merged_header, result_keys

GOOD = {"valid": True, "wrong": False, "unknown": False, "quality": "good", "result": "ok"}
ROLE = {**GOOD, "quality": "risky", "is_role": True}
BAD = {"valid": False, "wrong": True, "unknown": False, "quality": "bad", "result": "invalid"}


def test_result_columns_collide_case_insensitively_and_get_a_suffix() -> None:
    original = ["Email", "Decision", "Valid", "decision_apexverify", "Quality "]
    header = merged_header(original, "email")
    assert header[:5] == original  # the customer's names as they are
    assert header[5] == "decision_apexverify2"
    assert header[6] == "valid_apexverify"
    assert "quality_apexverify" in header
    assert header.count("wrong") == 1
    assert len(header) == 5 + len(result_keys("email"))
    assert len({name.casefold() for name in header}) == len(header)


def test_rows_join_results_by_seq_blank_rows_stay_with_empty_results() -> None:
    originals = [["a@x.com", "A"], ["", "blank"], ["b@x.com"], ["c@x.com", "C", "surplus"]]
    results = [(0, "a@x.com", '{"valid":true,"quality":"good"}'), (2, "b@x.com", BAD)]
    results.append((3, "c@x.com", ROLE))
    rows = list(merge_rows("email", 2, originals, results))
    n = len(result_keys("email"))
    assert [row[:2] for row in rows] == [
        ["a@x.com", "A"],
        ["", "blank"],
        ["b@x.com", ""],
        ["c@x.com", "C"],
    ]
    assert [row[2] for row in rows] == ["deliverable", None, "undeliverable", "risky"]
    assert rows[1][2:] == [None] * n
    assert all(len(row) == 2 + n for row in rows)


@pytest.mark.parametrize(
    ("result_filter", "kept"),
    [
        (ResultFilter(decisions=frozenset({"deliverable"})), ["a"]),
        (ResultFilter(decisions=frozenset({"risky", "undeliverable"})), ["b", "c"]),
        (ResultFilter(flags=frozenset({"is_role"})), ["c"]),
        (ResultFilter(search="B@"), ["b"]),
        (ResultFilter(), ["a", "", "b", "c"]),  # an empty filter keeps every row
    ],
)
def test_a_filter_keeps_only_matching_rows(result_filter: ResultFilter, kept: list[str]) -> None:
    originals = [["a"], [""], ["b"], ["c"]]
    results: list[tuple[int, str, Any]] = [(0, "a@x", GOOD), (2, "b@x", BAD), (3, "c@x", ROLE)]
    rows = merge_rows("email", 1, originals, results, result_filter=result_filter)
    assert [row[0] for row in rows] == kept


def test_csv_is_rfc4180_with_a_bom_and_guards_result_columns_only() -> None:
    rows = [["=SUM(A1)", 'say "hi"', True, None, "=cmd", "+44", 250]]
    body = b"".join(stream_csv(["a", "b", "c", "d", "e", "f", "g"], rows, trusted_columns=2))
    assert body.startswith(b"\xef\xbb\xbf")
    assert body.count(b"\r\n") == 2
    parsed = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    assert parsed[1] == ["=SUM(A1)", 'say "hi"', "true", "", "'=cmd", "'+44", "250"]


def test_csv_streams_in_pieces() -> None:
    rows = ([f"user{i}@example.com", i] for i in range(20_000))
    pieces = list(stream_csv(["email", "n"], rows))
    assert len(pieces) > 1
    assert b"".join(pieces).decode("utf-8-sig").count("\r\n") == 20_001
