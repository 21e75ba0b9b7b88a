"""The exact repeat pass of the parse (``repository/repeats.py``) against the rule written out
here, and against ``repeats.resolve_portable`` (the PostgreSQL path), on the same loaded rows:
the same kinds, first occurrences, verbatim-repeat flags, ``included`` and count."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from apexverify.batches.dedupe import DuplicateFinder
from apexverify.batches.parsing import ParseSpec, classify_block
from apexverify.batches.repository import repeats, row_load
from tests.batches.test_row_load import _batch_pk
from tests.support.fast import Lab

SECRET = b"p" * 32


def _lines() -> list[tuple[int, str]]:
    values = []
    for i in range(900):
        values.append(f"user{i % 300}@example{i % 3}.com")  # verbatim repeats
        if i % 5 == 0:
            values.append(f"USER{i % 300}@EXAMPLE{i % 3}.com")  # case-only repeats
        if i % 7 == 0:
            values.append(f"broken-{i % 20}@")  # malformed, repeated too
    return list(enumerate(values))


def _expected(lines: list[tuple[int, str]], keep: bool) -> dict[int, tuple[Any, ...]]:
    """seq -> (kind, primary_seq, exact_repeat, included) by the documented rule."""
    first: dict[tuple[str, str], int] = {}
    texts: dict[tuple[str, str], set[str]] = {}
    out = {}
    for seq, value in lines:
        wrong = value.endswith("@")
        group = ("wrong" if wrong else "valid", value.lower())
        if group not in first:
            first[group], texts[group] = seq, {value}
            out[seq] = ("wrong" if wrong else "valid", None, False, not wrong)
            continue
        repeat = value in texts[group]
        texts[group].add(value)
        if wrong:
            out[seq] = ("wrong", first[group], repeat, False)
        else:
            out[seq] = ("duplicate", first[group], repeat, keep)
    return out


async def _loaded(lab: Lab, lines: list[tuple[int, str]]) -> tuple[int, set[int]]:
    batch_pk = await _batch_pk(lab)
    block = classify_block(ParseSpec("email", "US", False, SECRET), lines)
    finder = DuplicateFinder()
    finder.see_block(block.seqs, block.keys)
    with lab.services.store.write() as session:
        row_load.load_block(session, batch_pk, block)
    return batch_pk, finder.rows_to_check()


def _state(lab: Lab, batch_pk: int) -> dict[int, tuple[Any, ...]]:
    with lab.services.store.read() as session:
        rows = session.execute(
            text(
                "SELECT seq, kind, primary_seq, exact_repeat, included FROM records"
                " WHERE batch_pk = :b"
            ),
            {"b": batch_pk},
        ).all()
    return {seq: (kind, first, bool(rep), bool(inc)) for seq, kind, first, rep, inc in rows}


@pytest.mark.parametrize("keep", [True, False])
async def test_the_repeat_pass_follows_the_rule_and_the_other_path(lab: Lab, keep: bool) -> None:
    lines = _lines()
    fast_pk, candidates = await _loaded(lab, lines)
    other_pk, _ = await _loaded(lab, lines)
    with lab.services.store.write() as session:
        fast = repeats.resolve(session, fast_pk, candidates, keep_duplicates=keep)
        other = repeats.resolve_portable(session, other_pk, candidates, keep_duplicates=keep)
    expected = _expected(lines, keep)
    assert _state(lab, fast_pk) == expected
    assert _state(lab, other_pk) == expected
    assert fast == other == sum(1 for row in expected.values() if row[0] == "duplicate")
    assert {row[2] for row in expected.values()} == {True, False}
