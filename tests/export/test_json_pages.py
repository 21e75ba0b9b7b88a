"""The paged JSON export: the page writer against the per-value rule (``record_object``) for
every form a stored result can take, and the page reader against the row reader of
``records.py`` on a real finished batch, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from itertools import chain
from typing import Any

import orjson
import pytest

from apexverify.batches.repository import batches as batch_rows
from apexverify.batches.repository import records
from apexverify.batches.repository.export_json import iter_export_pages
from apexverify.export.json_export import StoredRow, record_object, stream_json_pages
from tests.api.test_export_postgres import pg_lab, pg_url  # noqa: F401  (fixtures)
from tests.support.fast import Lab

RESULT = {"valid": True, "wrong": False, "unknown": False, "quality": "good", "result": "ok"}

# Every stored form: compact bytes (SQLite), an empty object, no result yet, PostgreSQL's
# spaced text, a decoded dict (filtered exports), bytes with surrounding whitespace.
STORED: list[tuple[str, Any, dict[str, Any] | None]] = [
    ("a@example.com", orjson.dumps(RESULT), RESULT),
    ("b@example.com", b"{}", {}),
    ("c@example.com", None, None),
    ('d"\\\u00e9@example.com', json.dumps(RESULT), RESULT),
    ("e@example.com", RESULT, RESULT),
    ("f@example.com", b" " + orjson.dumps(RESULT) + b"\n", RESULT),
]


@pytest.mark.parametrize("details", [True, False])
@pytest.mark.parametrize("statistics", [None, {"total": 6}])
def test_pages_write_each_value_by_the_documented_rule(
    details: bool, statistics: dict[str, Any] | None
) -> None:
    rows: list[StoredRow] = [(value, raw) for value, raw, _ in STORED]
    pages = [rows[:2], [], rows[2:5], rows[5:]]  # an empty page (all filtered out) too
    pieces = list(stream_json_pages("email", pages, details=details, statistics=statistics))
    assert len(pieces) == 4  # one per non-empty page, and the closing one
    expected = {
        value: record_object("email", value, result, details) for value, _raw, result in STORED
    }
    if details:  # a stored empty object is spliced as it is (no field after the identity)
        expected["b@example.com"] = {"email": "b@example.com"}
    if statistics is not None:
        expected["_statistics"] = statistics
    assert json.loads(b"".join(pieces)) == expected


@pytest.mark.parametrize("statistics", [None, {"total": 0}])
def test_no_rows_is_an_empty_object_or_the_statistics(statistics: dict[str, Any] | None) -> None:
    body = b"".join(stream_json_pages("phone", iter([]), details=True, statistics=statistics))
    assert json.loads(body) == ({} if statistics is None else {"_statistics": statistics})


def _lines() -> list[str]:
    lines = []
    for i in range(1200):
        lines.append(f"user{i}@example{i % 9}.com")
        if i % 7 == 0:
            lines.append(f"user{i}@example{i % 9}.com")  # verbatim repeat: one key
        if i % 11 == 0:
            lines.append(f"USER{i}@EXAMPLE{i % 9}.com")  # case-only repeat: a duplicate
        if i % 13 == 0:
            lines.append(f"broken-{i}@")  # malformed, kept (remove_wrong false)
    return lines


async def _finished_batch(lab: Lab) -> int:
    _account, key = lab.account(sandbox=True, email=5000)
    batch_uuid = await lab.upload(
        key,
        "\n".join(_lines()) + "\n",
        remove_duplicate="false",
        remove_wrong_email_format="false",
    )
    assert (await lab.post(key, f"/v1/batch/{batch_uuid}")).json() == {"status": "ok"}
    await lab.queue.run_all()
    with lab.services.store.read() as session:
        batch = batch_rows.by_uuid(session, batch_uuid)
        assert batch is not None
        assert batch.status == "verification_done"
        return batch.pk


def _decoded(rows: Any) -> list[tuple[str, Any]]:
    return [(value, None if raw is None else orjson.loads(raw)) for value, raw in rows]


async def _pages_match_rows(lab: Lab) -> None:
    batch_pk = await _finished_batch(lab)
    for unique in (True, False):
        with lab.services.store.read() as session:
            pages = list(iter_export_pages(session, batch_pk, unique, page_rows=500))
            rows = list(records.iter_export_json(session, batch_pk, unique))
        assert all(0 < len(page) <= 500 for page in pages)
        assert _decoded(chain.from_iterable(pages)) == _decoded(rows)
        values = [value for value, _ in rows]
        assert (len(set(values)) == len(values)) is unique  # the verbatim repeats folded
        assert any(value.startswith("USER") for value in values)  # kept duplicates in
        assert any(value.startswith("broken-") for value in values)  # kept malformed rows in


async def test_pages_hold_the_rows_of_the_row_reader_on_sqlite(lab: Lab) -> None:
    await _pages_match_rows(lab)


async def test_pages_hold_the_rows_of_the_row_reader_on_postgresql(pg_lab: Lab) -> None:  # noqa: F811
    await _pages_match_rows(pg_lab)
