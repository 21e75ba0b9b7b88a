"""The parse's block form and bulk load: a classified block holds exactly the rows of the
per-line rule, the once-keyed hash gives the same digests as ``value_key``, the block
duplicate finder flags exactly the repeated keys, and ``row_load`` stores every column as the
row tuple says (multi-row statements of several sizes on SQLite, COPY on PostgreSQL)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from sqlalchemy import text

from apexverify.batches.dedupe import DuplicateFinder
from apexverify.batches.hashing import value_key, value_keyer
from apexverify.batches.parsing import ParseSpec, classify_block
from apexverify.batches.repository import batches as batch_rows
from apexverify.batches.repository import records, row_load
from apexverify.batches.values import normalizer
from tests.api.test_export_postgres import pg_lab, pg_url  # noqa: F401  (fixtures)
from tests.support.fast import Lab

SECRET = b"r" * 32


def test_the_once_keyed_hash_is_value_key() -> None:
    key = value_keyer(SECRET)
    for value in ("a@b.com", "Alice@Example.COM", "jos\u00e9@\u00e9xample.com", "", "+6591234567"):
        assert key(value) == value_key(SECRET, value)
    assert value_keyer(b"other" * 4)("a@b.com") != key("a@b.com")


def _lines(n: int, seed: int = 5) -> list[tuple[int, str]]:
    rng = random.Random(seed)
    lines = []
    for seq in range(n):
        r = rng.random()
        if r < 0.2:
            value = f"User{seq}@EXAMPLE.com"  # valid, not canonical: normalized stored
        elif r < 0.3:
            value = f"broken-{seq}@"
        else:
            value = f"user{seq}@example.com"
        lines.append((seq * 2, value))  # gaps: blank lines keep their numbers
    return lines


@pytest.mark.parametrize("keep_wrong", [True, False])
def test_a_block_holds_the_rows_of_the_per_line_rule(keep_wrong: bool) -> None:
    spec = ParseSpec("email", "US", keep_wrong=keep_wrong, secret=SECRET)
    lines = _lines(700)
    block = classify_block(spec, lines)
    normalize = normalizer("email", "US")
    expected = []
    for seq, value in lines:
        norm = normalize(value)
        if norm is None:
            expected.append((seq, value, None, value_key(SECRET, value), "wrong", keep_wrong))
        else:
            stored = None if norm == value else norm
            expected.append((seq, value, stored, value_key(SECRET, norm), "valid", True))
    assert [row[:6] for row in block.rows()] == expected
    assert list(block.seqs) == [seq for seq, _ in lines]
    assert block.keys == b"".join(row[3] for row in expected)
    assert block.wrong_count == sum(1 for row in expected if row[4] == "wrong")
    assert {row[2] is None for row in expected if row[4] == "valid"} == {True, False}


def test_the_block_finder_flags_exactly_the_repeated_keys() -> None:
    rng = random.Random(9)
    distinct = [rng.randbytes(16) for _ in range(3000)]
    keys = [rng.choice(distinct) if rng.random() < 0.1 else rng.randbytes(16) for _ in range(20000)]
    seqs = list(range(0, 40000, 2))
    by_block = DuplicateFinder()
    for start in range(0, len(keys), 3000):  # several blocks, repeats across them
        by_block.see_block(seqs[start : start + 3000], b"".join(keys[start : start + 3000]))
    by_pair = DuplicateFinder()
    by_pair.see(zip(seqs, keys, strict=True))
    counts: dict[bytes, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    repeated = {seq for seq, key in zip(seqs, keys, strict=True) if counts[key] > 1}
    assert repeated  # the list does repeat
    assert by_block.rows_to_check() == by_pair.rows_to_check() == repeated


_COLUMNS = "seq, value, normalized, key_hash, kind, included, verdict, result"


async def _batch_pk(lab: Lab) -> int:
    _account, key = lab.account(sandbox=True, email=10)
    batch_uuid = await lab.upload(key, "seed@example.com\n")
    with lab.services.store.write() as session:
        batch = batch_rows.by_uuid(session, batch_uuid)
        assert batch is not None
        records.delete_rows(session, batch.pk)
        return batch.pk


def _stored(lab: Lab, batch_pk: int) -> list[tuple[Any, ...]]:
    with lab.services.store.read() as session:
        rows = session.execute(
            text(
                f"SELECT {_COLUMNS}, attempts, exact_repeat, primary_seq, cache_source"
                " FROM records WHERE batch_pk = :b ORDER BY seq"
            ),
            {"b": batch_pk},
        ).all()
    return [
        (seq, value, norm, bytes(key), kind, bool(inc), verdict, result, *rest)
        for seq, value, norm, key, kind, inc, verdict, result, *rest in rows
    ]


async def _loads_every_column(lab: Lab) -> None:
    batch_pk = await _batch_pk(lab)
    second = [(seq + 10_000, value) for seq, value in _lines(7, seed=6)]
    blocks = [
        # 1,234 lines: 500-row statements and remainders in every group; then a small block
        # whose malformed rows are not kept.
        classify_block(ParseSpec("email", "US", True, SECRET), _lines(1234)),
        classify_block(ParseSpec("email", "US", False, SECRET), second),
    ]
    with lab.services.store.write() as session:
        for block in blocks:
            row_load.load_block(session, batch_pk, block)
    expected = []
    for block in blocks:
        for row in block.rows():
            expected.append((*row, 0, False, None, None))  # attempts, exact_repeat, ...
    got = _stored(lab, batch_pk)
    # The result column reads back as JSON text on SQLite, decoded on PostgreSQL.
    got = [(*row[:7], _json_text(row[7]), *row[8:]) for row in got]
    expected = [(*row[:7], _json_text(row[7]), *row[8:]) for row in expected]
    assert got == expected
    assert {row[4] for row in got} == {"valid", "wrong"}
    assert {row[5] for row in got if row[4] == "wrong"} == {True, False}


def _json_text(value: Any) -> Any:
    if value is None:
        return None
    return json.loads(value) if isinstance(value, str) else value


async def test_row_load_stores_every_column_on_sqlite(lab: Lab) -> None:
    await _loads_every_column(lab)


async def test_row_load_stores_every_column_on_postgresql(pg_lab: Lab) -> None:  # noqa: F811
    await _loads_every_column(pg_lab)
