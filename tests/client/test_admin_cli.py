"""The admin CLI finds the server's database the way serve does, refuses to create one where
it finds none, says what migrate did, and serve refuses several processes unless scaled out.

Most run ``main()`` in this process (an interpreter start per command would cost seconds):
``logs.configure`` is replaced so the commands leave pytest's logging alone."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory

from apexverify.cli.main import main
from apexverify.store.migrate import alembic_config
from tests.support.server import BIN

HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


@pytest.fixture
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and no APEXVERIFY_* variable: the defaults (./var)."""
    for name in list(os.environ):
        if name.startswith("APEXVERIFY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("APEXVERIFY_DNS_CANARIES", "")
    # Recorded as unset, so monkeypatch removes it again after `--env-file` (main sets it).
    monkeypatch.setenv("APEXVERIFY_ENV_FILE", "")
    monkeypatch.setattr("apexverify.logs.configure", lambda *_a, **_k: None)
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_account_list_without_a_database_exits_non_zero_and_creates_nothing(
    tmp_path: Path,
) -> None:
    """The whole command, as a person runs it from the wrong directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("APEXVERIFY_")}
    done = subprocess.run(
        [str(BIN), "account", "list"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert f"no database at {tmp_path / 'var' / 'apexverify.db'}" in done.stderr
    assert "apexverify migrate" in done.stderr
    assert "--env-file" in done.stderr
    assert list(tmp_path.iterdir()) == []  # no var/, no database file


@pytest.mark.parametrize(
    "args",
    [
        ["account", "create", "--name", "acme"],
        ["key", "list", "--account", "nobody"],
        ["credits", "add", "--account", "nobody", "--type", "email", "--amount", "5"],
        ["cache", "summary"],
    ],
    ids=["account-create", "key-list", "credits-add", "cache-summary"],
)
def test_admin_commands_refuse_to_create_a_database(
    bare: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    assert "no database at" in capsys.readouterr().err
    assert list(bare.iterdir()) == []


def test_migrate_says_what_it_did(bare: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = bare / "var" / "apexverify.db"
    assert main(["migrate"]) == 0
    assert capsys.readouterr().out == (
        f"created a new database at {where} and applied {count_to(HEAD)} migrations: "
        f"it is at the latest schema ({HEAD})\n"
    )
    assert main(["migrate"]) == 0
    said = capsys.readouterr().out
    assert said == f"the database at {where} is already at the latest schema ({HEAD})\n"
    assert main(["account", "list"]) == 0  # now there is one: the other commands use it
    assert capsys.readouterr().out == "no accounts\n"


def test_migrate_reports_an_upgrade(bare: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = "0004"
    url = f"sqlite:///{bare / 'var' / 'apexverify.db'}"
    (bare / "var").mkdir()
    command.upgrade(alembic_config(url), old)  # a database an older version left
    assert main(["migrate"]) == 0
    lines = capsys.readouterr().out.splitlines()
    applied = count_to(HEAD) - count_to(old)
    assert lines[0] == (
        f"upgraded the database at {bare / 'var' / 'apexverify.db'} from {old} to {HEAD} "
        f"({applied} migrations): it is at the latest schema"
    )
    assert [line.split()[0] for line in lines[1:]] == revisions_after(old)


def count_to(revision: str) -> int:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return len(list(script.iterate_revisions(revision, "base")))


def revisions_after(revision: str) -> list[str]:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [r.revision for r in reversed(list(script.iterate_revisions("head", revision)))]


def test_env_file_points_any_directory_at_the_servers_database(
    bare: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = tmp_path / "srv"
    env_file = tmp_path / "apexverify.env"
    env_file.write_text(
        f"APEXVERIFY_DATABASE_URL=sqlite:///{server / 'apexverify.db'}\n"
        f"APEXVERIFY_DATA_DIR={server / 'var'}\n"
        "OTHER_TOOL_SETTING=ignored\n"
    )
    assert main(["--env-file", str(env_file), "migrate"]) == 0
    assert str(server / "apexverify.db") in capsys.readouterr().out
    assert main(["--env-file", str(env_file), "account", "create", "--name", "a", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert main(["--env-file", str(env_file), "account", "list", "--json"]) == 0
    assert [a["account_id"] for a in json.loads(capsys.readouterr().out)] == [created["account_id"]]
    assert list(bare.iterdir()) == []  # the working directory was never used
    monkeypatch.setenv("APEXVERIFY_ENV_FILE", str(tmp_path / "missing.env"))
    assert main(["account", "list"]) == 2
    assert "APEXVERIFY_ENV_FILE: no such file" in capsys.readouterr().err


def test_serve_refuses_several_processes_without_procrastinate(
    bare: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--workers", "2", "--port", "1"]) == 2
    said = capsys.readouterr().err
    assert "--workers 2" in said
    assert "procrastinate" in said
    assert "--workers 1" in said
    assert not (bare / "var" / "apexverify.db").exists()  # stopped before anything ran


def test_serve_init_demo_reminds_how_to_get_a_key(
    bare: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from apexverify.cli import admin
    from apexverify.settings import Settings

    settings = Settings.from_env()
    admin._init_demo(settings)
    first = capsys.readouterr().out
    account = first.split("demo account ")[1].split(".")[0]
    assert "API key (shown once): apx_" in first
    admin._init_demo(settings)  # the next start: no key to show, how to get one
    again = capsys.readouterr().out
    assert f"key create --account {account}" in again
    assert "cannot be recovered" in again
    assert "apx_" not in again
