"""The results table's SQL filter keeps exactly the rows ``ResultFilter.matches`` keeps (the
filtered exports' row-by-row rule), on a mixed sandbox batch: every decision, verdict,
quality, flag, searches (case, LIKE wildcards), and combinations; keyset pages in both
directions cover every match once, in file order, also when the scan cap cuts pages short."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from apexverify.app import create_app
from apexverify.batches import results_view, tasks
from apexverify.batches.repository import records
from apexverify.batches.service import get_batch
from apexverify.composition import build_services, prepare_database
from apexverify.errors import BadRequest
from apexverify.export.filters import ResultFilter
from apexverify.settings import Settings
from tests.support.fakes import FakeEngines, RecordingQueue
from tests.support.fast import FAST_RETRY, Lab

PG_ADMIN_URL = os.environ.get("APEXVERIFY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")

# Sandbox local parts (docs/sandbox.md): every verdict, quality and email flag appears.
KINDS = ("valid", "invalid", "unknown", "catchall", "disposable", "role", "error")
DOMAINS = ("example.com", "gmail.com", "Example.ORG")


def _lines() -> list[str]:
    lines = [f"{kind}+{i}@{DOMAINS[i % 3]}" for i in range(140) for kind in [KINDS[i % 7]]]
    lines += ["VALID+1@GMAIL.com", "valid+1@gmail.com", "x_y%z@example.com", "broken@", "@nope"]
    return lines


FILTERS = [
    ResultFilter(),
    *[
        ResultFilter(decisions=frozenset({d}))
        for d in ("deliverable", "risky", "undeliverable", "unknown")
    ],  # type: ignore[arg-type]
    ResultFilter(decisions=frozenset({"deliverable", "risky"})),  # type: ignore[arg-type]
    *[ResultFilter(verdicts=frozenset({v})) for v in ("valid", "wrong", "unknown")],
    *[ResultFilter(qualities=frozenset({q})) for q in ("good", "risky", "bad", "unknown")],
    *[
        ResultFilter(flags=frozenset({f}))
        for f in ("is_free", "is_role", "is_disposable", "is_catch_all", "is_syntax_error")
    ],
    ResultFilter(flags=frozenset({"is_free", "is_role"})),
    ResultFilter(search="GMAIL"),
    ResultFilter(search="valid+1"),
    ResultFilter(search="_y%"),  # LIKE wildcards are literal characters here
    ResultFilter(search="%"),
    ResultFilter(search="nothing-matches"),
    ResultFilter(search="gmail", decisions=frozenset({"risky"}), flags=frozenset({"is_free"})),  # type: ignore[arg-type]
    ResultFilter(verdicts=frozenset({"unknown"}), qualities=frozenset({"risky"})),
]


async def _done_batch(lab: Lab, **fields: str) -> tuple[str, str, list[str]]:
    account_id, key = lab.account(sandbox=True, email=1000)
    lines = _lines()
    batch_uuid = await lab.upload(key, "\n".join(lines) + "\n", **fields)
    assert (await lab.post(key, f"/v1/batch/{batch_uuid}")).json() == {"status": "ok"}
    await lab.queue.run_all()
    return account_id, batch_uuid, lines


def _every_page(
    lab: Lab, account_id: str, batch_uuid: str, wanted: ResultFilter, size: int
) -> list[tuple[int, str]]:
    seen: list[tuple[int, str]] = []
    after: int | None = None
    with lab.services.store.read() as session:
        while True:
            page = results_view.results_page(
                session, account_id, batch_uuid, wanted, after=after, size=size, counts=False
            )
            seen += [(row.seq, row.value) for row in page.rows]
            if page.next_after is None:
                return seen
            after = page.next_after


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the module (skips when none is reachable)."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    name = f"apexverify_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def pg_lab(pg_url: str, tmp_path: Path) -> AsyncIterator[Lab]:
    """The fast tier's lab on PostgreSQL: the same app and services, the other dialect."""
    config = Settings(database_url=pg_url, data_dir=tmp_path / "var", parse_workers=1)
    queue, engines = RecordingQueue(), FakeEngines()
    services = build_services(config, engines=engines, queue=queue, retry=FAST_RETRY)
    prepare_database(services)
    tasks.register(services)
    transport = httpx.ASGITransport(app=create_app(services=services), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://apexverify.test") as client:
        yield Lab(services, queue, engines, client)
    services.store.dispose()


def _agree(lab: Lab, account_id: str, batch_uuid: str, wanted: ResultFilter) -> None:
    with lab.services.store.read() as session:
        batch = get_batch(session, account_id, batch_uuid)
        every = list(records.iter_export_rows(session, batch.pk, unique_values=False))
    expected = [value for value, result in every if wanted.matches("email", value, result)]
    got = [value for _seq, value in _every_page(lab, account_id, batch_uuid, wanted, 50)]
    assert got == expected, wanted


async def test_postgresql_filter_keeps_what_matches_keeps(pg_lab: Lab) -> None:
    """The same agreement on PostgreSQL (``->>``, ``ILIKE``): every filter on one batch."""
    account_id, batch_uuid, _ = await _done_batch(
        pg_lab, remove_duplicate="false", remove_wrong_email_format="false"
    )
    for wanted in FILTERS:
        _agree(pg_lab, account_id, batch_uuid, wanted)
    with pg_lab.services.store.read() as session:
        counts = results_view.decision_counts(session, account_id, batch_uuid)
    assert sum(counts.values()) == len(_lines())
    with pg_lab.services.store.read() as session:
        batch = get_batch(session, account_id, batch_uuid)
        quality = results_view.field_counts(session, batch, "quality")  # the batch page's chart
    assert set(quality) <= {"good", "risky", "bad", "unknown"}


def _filter_id(wanted: ResultFilter) -> str:
    """A stable test id: xdist workers must collect the same names, and a frozenset's repr
    depends on the process's string hashing."""
    parts = []
    for name in ("decisions", "verdicts", "qualities", "flags"):
        value = getattr(wanted, name)
        if value:
            parts.append(f"{name}={'+'.join(sorted(value))}")
    if wanted.search:
        parts.append(f"search={wanted.search}")
    return ",".join(parts) or "empty"


@pytest.mark.parametrize("wanted", FILTERS, ids=_filter_id)
async def test_sql_filter_keeps_what_matches_keeps(lab: Lab, wanted: ResultFilter) -> None:
    account_id, batch_uuid, _ = await _done_batch(
        lab, remove_duplicate="false", remove_wrong_email_format="false"
    )
    with lab.services.store.read() as session:
        batch = get_batch(session, account_id, batch_uuid)
        every = list(records.iter_export_rows(session, batch.pk, unique_values=False))
    assert len(every) == len(_lines())  # duplicates and malformed rows are kept
    expected = [value for value, result in every if wanted.matches("email", value, result)]
    got = [value for _seq, value in _every_page(lab, account_id, batch_uuid, wanted, 50)]
    assert got == expected
    if wanted.empty:
        assert len(got) == len(every)


async def test_pages_are_bounded_and_walk_both_ways(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a scan window smaller than the batch, pages stop short and say so, the next
    link goes on from where the scan stopped, and previous links walk back to the start."""
    account_id, batch_uuid, lines = await _done_batch(lab)
    monkeypatch.setattr(results_view, "SCAN_ROWS", 30)
    wanted = ResultFilter(decisions=frozenset({"deliverable"}))
    walked = _every_page(lab, account_id, batch_uuid, wanted, 50)
    with lab.services.store.read() as session:
        batch = get_batch(session, account_id, batch_uuid)
        every = list(records.iter_export_rows(session, batch.pk, unique_values=False))
        first = results_view.results_page(
            session, account_id, batch_uuid, wanted, size=50, counts=True
        )
        assert first.stopped_short
        assert first.last_seq == first.first_seq + 29
        assert first.next_after == first.last_seq
        assert first.decision_counts is not None
        assert first.decision_counts["deliverable"] == len(walked)
        assert sum(first.decision_counts.values()) == len(every)
        # Backwards from the end: the same rows, in the same order.
        back: list[tuple[int, str]] = []
        batch_last = max(seq for seq, _ in walked) + 1
        before: int | None = batch_last
        while before is not None:
            page = results_view.results_page(
                session, account_id, batch_uuid, wanted, before=before, size=50, counts=False
            )
            back = [(row.seq, row.value) for row in page.rows] + back
            before = page.prev_before
    expected = [v for v, r in every if wanted.matches("email", v, r)]
    assert [v for _, v in walked] == expected
    assert back == [(s, v) for s, v in walked if s < batch_last]
    assert len(lines) > 30


async def test_rows_carry_decision_reason_and_flags(lab: Lab) -> None:
    account_id, batch_uuid, _ = await _done_batch(lab)
    with lab.services.store.read() as session:
        page = results_view.results_page(
            session, account_id, batch_uuid, ResultFilter(search="catchall+3@"), size=50
        )
    (row,) = page.rows
    assert (row.value, row.decision, row.verdict, row.quality) == (
        "catchall+3@example.com",
        "risky",
        "unknown",
        "risky",
    )
    assert row.flags == ("is_catch_all",)


@pytest.mark.parametrize(
    "names",
    [
        {"decisions": ["great"]},
        {"verdicts": ["maybe"]},
        {"qualities": ["nice"]},
        {"flags": ["is_ported"]},  # a phone flag on an email batch
    ],
)
def test_unknown_filter_names_are_refused(names: dict[str, Any]) -> None:
    empty: dict[str, Any] = {"decisions": [], "verdicts": [], "qualities": [], "flags": []}
    with pytest.raises(BadRequest, match="use "):
        results_view.parse_filter("email", **(empty | names), search=None)


def test_all_filter_combinations_parse() -> None:
    for decision, verdict in itertools.product(["", "risky"], ["", "valid"]):
        wanted = results_view.parse_filter(
            "email",
            decisions=[decision],
            verdicts=[verdict],
            qualities=[],
            flags=[],
            search="  ",
        )
        assert wanted.empty is not (decision or verdict)
