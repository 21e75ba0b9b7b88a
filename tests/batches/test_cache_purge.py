"""``apexverify cache purge`` removes exactly the selected entries (and ``summary`` counts
them), on a real SQLite database through the CLI's own entry point."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from apexverify.batches.repository import caches
from apexverify.cli.main import main
from apexverify.store.migrate import open_store
from apexverify.store.models import CachedResult

DAY = 86400
NOW = int(time.time())
# (scope, type, key, verdict, evidence, age in days)
ENTRIES = [
    ("", "email", b"k-nx-global-new.", "wrong", "nxdomain", 0),
    ("", "email", b"k-nx-global-old.", "wrong", "nxdomain", 40),
    ("acct-1", "email", b"k-nx-account....", "wrong", "nxdomain", 0),
    ("", "email", b"k-user-unknown..", "wrong", "user_unknown", 0),
    ("", "email", b"k-accepted......", "valid", "accepted", 0),
    ("acct-1", "phone", b"k-phone.........", "valid", None, 0),
]


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cache.db'}"
    monkeypatch.setenv("APEXVERIFY_DATABASE_URL", url)
    monkeypatch.setenv("APEXVERIFY_DATA_DIR", str(tmp_path))
    store = open_store(url)
    with store.write() as session:
        for scope, kind, key, verdict, evidence, _age in ENTRIES:
            result = {"verdict": verdict} | ({"evidence": evidence} if evidence else {})
            caches.upsert(session, scope, kind, [(key, verdict, result)])
        for scope, _kind, key, _v, _e, age in ENTRIES:
            row = session.scalars(
                select(CachedResult).where(
                    CachedResult.account_id == scope, CachedResult.key_hash == key
                )
            ).one()
            row.verified_at = NOW - age * DAY
    return url


def _keys(url: str) -> set[bytes]:
    with open_store(url).read() as session:
        return set(session.scalars(select(CachedResult.key_hash)))


def _iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(epoch))


def test_purge_by_scope_and_evidence_removes_only_those(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _keys(database)
    assert main(["cache", "purge", "--scope", "global", "--evidence", "nxdomain", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"removed": 2, "matched": 2}
    assert before - _keys(database) == {b"k-nx-global-new.", b"k-nx-global-old."}


def test_purge_by_date_and_account(database: str) -> None:
    before = _keys(database)
    assert main(["cache", "purge", "--before", _iso(NOW - 30 * DAY)]) == 0
    assert before - _keys(database) == {b"k-nx-global-old."}
    assert main(["cache", "purge", "--scope", "acct-1", "--type", "email"]) == 0
    assert before - _keys(database) == {b"k-nx-global-old.", b"k-nx-account...."}


def test_dry_run_and_a_purge_without_criteria_delete_nothing(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _keys(database)
    assert main(["cache", "purge", "--verdict", "wrong", "--dry-run"]) == 0
    assert "would remove 4 cache entries" in capsys.readouterr().out
    assert main(["cache", "purge"]) == 2
    assert "no criterion" in capsys.readouterr().err
    assert _keys(database) == before
    assert main(["cache", "purge", "--all"]) == 0
    assert _keys(database) == set()


def test_summary_counts_by_scope_verdict_and_evidence(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cache", "summary", "--json"]) == 0
    rows = {
        (r["scope"], r["type"], r["verdict"], r["evidence"]): r["entries"]
        for r in json.loads(capsys.readouterr().out)
    }
    assert rows == {
        ("account", "email", "wrong", "nxdomain"): 1,
        ("account", "phone", "valid", ""): 1,
        ("global", "email", "valid", "accepted"): 1,
        ("global", "email", "wrong", "nxdomain"): 2,
        ("global", "email", "wrong", "user_unknown"): 1,
    }


def test_a_bad_date_is_refused_with_a_message(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["cache", "purge", "--before", "last tuesday"])
    assert exited.value.code == 2
    assert "not an ISO date" in capsys.readouterr().err
