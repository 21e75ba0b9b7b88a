"""``apexverify backup`` / ``restore``: a backup taken while a batch verifies restores onto a
fresh data directory, and a server started there serves the same batches, results and
balances (and finishes the batch that was running, without a second debit)."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from apexverify.cli import backup_commands
from apexverify.cli.main import main
from tests.api.helpers import Api
from tests.support.server import BIN, LiveServer, server_env

RUNNING = 3000  # records of the batch that is verifying while the backup is taken


def cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )


def batches(api: Api) -> dict[str, tuple[str, str]]:
    listed = api.client.get("/v1/batch", params={"limit": 200}).json()["batches"]
    return {b["batch_uuid"]: (b["name"], b["type"]) for b in listed}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wait_until_verifying(api: Api, batch_uuid: str) -> None:
    """Until some records have results: the backup then catches the batch half done."""
    deadline = time.monotonic() + 60
    while True:
        body = api.status(batch_uuid)
        if body.get("progress", {}).get("verified", 0) >= 50:
            return
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def test_a_backup_taken_while_verifying_restores_onto_a_fresh_data_directory(
    make_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    # 4 chunks of 10 at a time, 200 ms each: the running batch takes about 15 s here.
    server: LiveServer = make_server(
        APEXVERIFY_SANDBOX_LATENCY_MS="200", APEXVERIFY_VERIFY_CHUNK_SIZE="10"
    )
    key, _account_id = server.create_account(sandbox=True, email_credits=1234.5, phone_credits=77)
    api = Api(server.base_url, key)
    done = api.run("valid@example.com\ninvalid@example.com\nrole@example.com\n", name="done")
    running = api.ready(
        "\n".join(f"user{i}@example{i % 13}.com" for i in range(RUNNING)), name="running"
    )
    assert api.client.post(f"/v1/batch/{running}").json() == {"status": "ok"}
    wait_until_verifying(api, running)

    backup = tmp_path / "backup"
    taken = cli(server.env, server.data_dir, "backup", str(backup), "--json")
    assert taken.returncode == 0, taken.stderr
    # Still running once the backup is written: it was taken while the batch verified.
    assert api.status(running)["status"] == "verification_ongoing"
    listed, balances = batches(api), api.client.get("/v1/account/credits").json()
    done_results = api.export_json(done)
    server.kill()

    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest == json.loads(taken.stdout)
    assert_manifest_lists_the_files(backup, manifest, server)

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    env = server_env(fresh)  # another database, data directory and upload directory
    restored_run = cli(env, fresh, "restore", str(backup))
    assert restored_run.returncode == 0, restored_run.stderr
    restored = LiveServer(data_dir=fresh, env=env).start()
    try:
        api2 = Api(restored.base_url, key)  # the same key: accounts and key hashes came back
        assert batches(api2) == listed
        assert api2.client.get("/v1/account/credits").json() == balances
        assert api2.export_json(done) == done_results
        finished = api2.wait_for(running, "verification_done", timeout=120)
        assert finished["stats"]["total_verification"] == RUNNING
        assert api2.client.get("/v1/account/credits").json() == balances
        assert_one_result_and_one_debit(fresh / "apexverify.db", running)
        assert_uploads_point_into(fresh / "apexverify.db", fresh / "var" / "uploads")
    finally:
        restored.stop()

    # The restored data directory is not fresh any more: a second restore changes nothing.
    # (In this process from here: the same command, without another interpreter start.)
    monkeypatch.setattr("apexverify.logs.configure", lambda *_a, **_k: None)  # keep pytest's
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    before = sha256(fresh / "apexverify.db")
    assert main(["restore", str(backup)]) == 1
    said = capsys.readouterr().err
    assert "a database exists at" in said
    assert "--force" in said
    assert sha256(fresh / "apexverify.db") == before
    assert_damage_is_refused(backup, tmp_path)


def assert_manifest_lists_the_files(
    backup: Path, manifest: dict[str, Any], server: LiveServer
) -> None:
    assert manifest["format"] == "apexverify-backup"
    assert manifest["schema_revision"]
    assert manifest["created_at"].endswith("Z")
    assert manifest["counts"]["batches"] == 2
    assert manifest["counts"]["records"] == RUNNING + 3
    assert manifest["counts"]["accounts"] == 1
    assert sha256(backup / "apexverify.db") == manifest["database"]["sha256"]
    secret = manifest["secret_key"]
    assert secret["source"] == "file"
    assert (backup / "secret.key").read_bytes() == (server.data_dir / "var/secret.key").read_bytes()
    uploads = manifest["uploads"]
    assert uploads["included"]
    assert uploads["missing"] == []
    assert len(uploads["files"]) == 2
    for entry in uploads["files"]:
        copy = backup / "uploads" / entry["name"]
        assert (copy.stat().st_size, sha256(copy)) == (entry["bytes"], entry["sha256"])
        assert sha256(server.data_dir / "var/uploads" / entry["name"]) == entry["sha256"]
    assert backup.stat().st_mode & 0o077 == 0  # it holds the secret key: owner only


def assert_one_result_and_one_debit(database: Path, batch_uuid: str) -> None:
    with closing(sqlite3.connect(database)) as db:
        count_per_record(db, batch_uuid)


def count_per_record(db: sqlite3.Connection, batch_uuid: str) -> None:
    pk = db.execute("SELECT pk FROM batches WHERE uuid = ?", (batch_uuid,)).fetchone()[0]
    per_record = db.execute(
        "SELECT COUNT(*), COUNT(verdict), COUNT(DISTINCT seq) FROM records WHERE batch_pk = ?",
        (pk,),
    ).fetchone()
    assert per_record == (RUNNING, RUNNING, RUNNING)
    debits = db.execute(
        "SELECT COUNT(*) FROM credit_ledger WHERE batch_uuid = ? AND kind = 'debit'",
        (batch_uuid,),
    ).fetchone()
    assert debits == (1,)


def assert_uploads_point_into(database: Path, uploads: Path) -> None:
    """The batches name their files in the new upload directory, not the original's (where
    deleting a restored batch would delete the original server's file)."""
    with closing(sqlite3.connect(database)) as db:
        paths = [Path(p) for (p,) in db.execute("SELECT file_path FROM batches")]
    assert paths
    assert all(p.parent == uploads and p.exists() for p in paths)


def assert_damage_is_refused(backup: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(backup, damaged)
    upload = next((damaged / "uploads").iterdir())
    data = bytearray(upload.read_bytes())
    data[0] ^= 1  # one bit: same size, another hash
    upload.write_bytes(bytes(data))
    with pytest.raises(backup_commands.Refused, match="damaged") as refused:
        backup_commands.read_backup(damaged)
    assert upload.name in str(refused.value)


def test_backup_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    target = tmp_path / "full"
    target.mkdir()
    (target / "something").write_text("x")
    with pytest.raises(backup_commands.Refused, match="not an empty directory"):
        backup_commands.write_backup(server_settings(tmp_path), target)


def server_settings(tmp_path: Path) -> Any:
    from apexverify.settings import Settings

    return Settings(
        database_url=f"sqlite:///{tmp_path / 'apexverify.db'}", data_dir=tmp_path / "var"
    )


def test_postgresql_backup_is_refused_with_the_pg_dump_commands(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("APEXVERIFY_DATABASE_URL", "postgresql://ops:hunter2@db.internal/apex")
    monkeypatch.setattr("apexverify.logs.configure", lambda *_a, **_k: None)  # keep pytest's
    assert main(["backup", str(tmp_path / "b")]) == 1
    said = capsys.readouterr().err
    assert "pg_dump --format=custom" in said
    assert "pg_restore" in said
    assert "postgresql://ops@db.internal/apex" in said
    assert "hunter2" not in said
    assert not (tmp_path / "b").exists()


async def test_without_uploads_the_batches_still_point_into_the_new_directory(
    lab: Any, tmp_path: Path
) -> None:
    """--no-uploads, and the secret checks of restore (in this process: the fast tier)."""
    _account, key = lab.account(sandbox=True)
    batch_uuid = await lab.upload(key, "valid@example.com\n")
    source = lab.services.settings
    backup = tmp_path / "backup"
    manifest = backup_commands.write_backup(source, backup, uploads=False)
    assert manifest["uploads"] == {"included": False, "reason": "--no-uploads"}
    assert not (backup / "uploads").exists()

    target = server_settings(tmp_path / "new")
    backup_commands.restore_backup(target, backup)
    with closing(sqlite3.connect(tmp_path / "new" / "apexverify.db")) as db:
        (locator,) = db.execute("SELECT file_path FROM batches").fetchone()
    assert Path(locator) == target.uploads_dir / f"{batch_uuid}.txt"
    secret = (target.data_dir / "secret.key").read_bytes()
    assert secret == (source.data_dir / "secret.key").read_bytes()

    # A target with another configured secret would lose the caches and sessions: refused.
    other = server_settings(tmp_path / "other").replace(secret_key="not-the-same")
    with pytest.raises(backup_commands.Refused, match="APEXVERIFY_SECRET_KEY is not the secret"):
        backup_commands.restore_backup(other, backup)
    assert not (tmp_path / "other" / "apexverify.db").exists()
