"""``apexverify backup PATH`` and ``apexverify restore PATH``: backups of the embedded mode.

A backup is a directory (docs/deployment.md, "Backups")::

    PATH/manifest.json     what is in it, with sizes and SHA-256 of every file
    PATH/apexverify.db     the SQLite database, copied with SQLite's online backup API
    PATH/secret.key        the generated service secret (absent when APEXVERIFY_SECRET_KEY is set)
    PATH/uploads/...       the uploaded file of every batch in the copy (not with --no-uploads)

The database is copied while the server runs: ``sqlite3.Connection.backup`` reads one
consistent snapshot in a single step (in WAL mode a reader never blocks the server's
writers), so the copy is the database as it was at one instant, a batch half verified
included. Then the uploads that snapshot's batches name are copied: an upload is stored
before its batch row commits, so every file the snapshot needs exists (unless its batch was
deleted meanwhile: the manifest lists it as missing). The directory is written under a
temporary name and renamed at the end: a PATH that exists is a complete backup.

The secret matters as much as the database: the caches' keyed hashes, the dashboard's
session signatures and the sealed webhook secrets are all keyed with it. ``restore`` refuses
a target whose secret differs from the backup's.

PostgreSQL (scale-out mode) is backed up with ``pg_dump``; ``backup`` says how and refuses.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path, PurePath
from typing import Any

from sqlalchemy import URL, make_url

from ..batches.hashing import load_secret
from ..settings import Settings
from ..storage.tempfiles import PART
from ..store.db import sqlite_file
from ..store.migrate import alembic_config, require_database
from .admin import quiet_logs

FORMAT = "apexverify-backup"
VERSION = 1
MANIFEST = "manifest.json"
DATABASE = "apexverify.db"
SECRET = "secret.key"
UPLOADS = "uploads"
_CHUNK = 1024 * 1024


class Refused(Exception):
    """The backup or restore cannot go on; the message says why and what to do."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backup = sub.add_parser(
        "backup",
        help="copy the SQLite database (while serving), the secret key and the uploads to PATH",
    )
    backup.add_argument("path", type=Path, help="a new (or empty) directory")
    backup.add_argument(
        "--no-uploads", action="store_true", help="leave the uploaded files out (smaller)"
    )
    backup.add_argument("--json", action="store_true", help="print the manifest")
    backup.set_defaults(handler=_backup)

    restore = sub.add_parser(
        "restore", help="restore a backup directory onto a fresh data directory (server stopped)"
    )
    restore.add_argument("path", type=Path, help="a directory written by apexverify backup")
    restore.add_argument(
        "--force",
        action="store_true",
        help="replace an existing database, secret key and uploads (stop the server first)",
    )
    restore.set_defaults(handler=_restore)


def _settings() -> Settings:
    settings = Settings.from_env()
    quiet_logs(settings)
    return settings


def _refused(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


# -- backup ----------------------------------------------------------------------------------


def _backup(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings.is_postgres:
        print(postgres_help(settings.database_url), file=sys.stderr)
        return 1
    require_database(settings.database_url)  # nothing to back up: say where we looked
    try:
        manifest = write_backup(settings, args.path, uploads=not args.no_uploads)
    except Refused as exc:
        return _refused(str(exc))
    if args.json:
        print(json.dumps(manifest, indent=2))
    else:
        print(_summary(args.path, manifest))
    return 0


def write_backup(settings: Settings, target: Path, *, uploads: bool = True) -> dict[str, Any]:
    """Write a backup directory at ``target``; returns its manifest."""
    database = sqlite_file(settings.database_url)
    assert database is not None, "a SQLite database (checked by the caller)"
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise Refused(f"{target} already exists and is not an empty directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700)  # it holds the secret key and every account's data
    try:
        manifest = _fill(settings, database, staging, uploads)
        _write_private(staging / MANIFEST, json.dumps(manifest, indent=2).encode())
        if target.exists():
            target.rmdir()  # the empty directory the caller made for it
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _fill(settings: Settings, database: Path, staging: Path, uploads: bool) -> dict[str, Any]:
    copy = staging / DATABASE
    _copy_database(database, copy)
    revision, counts, locators = _read_copy(copy)
    return {
        "format": FORMAT,
        "version": VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "apexverify_version": version("apexverify"),
        "schema_revision": revision,
        "database": {"file": DATABASE, **_file_facts(copy), "source": str(database.resolve())},
        "counts": counts,
        "secret_key": _copy_secret(settings, staging),
        "uploads": _copy_uploads(settings, locators, staging / UPLOADS)
        if uploads
        else {"included": False, "reason": "--no-uploads"},
    }


def _copy_database(source: Path, copy: Path) -> None:
    live = sqlite3.connect(source, timeout=60)
    try:
        out = sqlite3.connect(copy)
        try:
            live.backup(out)  # pages=-1: one step, one snapshot (see the module docstring)
            ok = out.execute("PRAGMA quick_check").fetchone()
        finally:
            out.close()
    finally:
        live.close()
    if ok != ("ok",):
        raise Refused(f"the copy of {source} failed SQLite's quick_check: {ok}")
    copy.chmod(0o600)


def _read_copy(copy: Path) -> tuple[str | None, dict[str, int], list[str]]:
    """The copy's schema revision, row counts per table, and the batches' upload locators."""
    db = sqlite3.connect(copy)
    try:
        revision = db.execute("SELECT version_num FROM alembic_version").fetchone()
        tables = [
            name
            for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                " ORDER BY name"
            )
        ]
        # Table names come from the copy's own catalogue, quoted: no user input here.
        counts = {t: db.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}
        locators = [row[0] for row in db.execute("SELECT file_path FROM batches")]
    finally:
        db.close()
    return (revision[0] if revision else None), counts, locators


def _copy_secret(settings: Settings, staging: Path) -> dict[str, Any]:
    if settings.secret_key:
        # Configuration, not data: it is not copied, but restore checks the target's is the same.
        return {
            "source": "APEXVERIFY_SECRET_KEY",
            "fingerprint": fingerprint(load_secret(settings.secret_key, settings.data_dir)),
        }
    path = settings.data_dir / SECRET
    if not path.is_file():
        return {"source": "none"}  # no server has started on this data directory yet
    _write_private(staging / SECRET, path.read_bytes())
    return {
        "source": "file",
        "file": SECRET,
        "fingerprint": fingerprint(_file_secret(path)),
        **_file_facts(staging / SECRET),
    }


def _copy_uploads(settings: Settings, locators: list[str], dest: Path) -> dict[str, Any]:
    if settings.storage_url:
        return {
            "included": False,
            "reason": f"uploads are kept in {settings.storage_url}: back up the bucket itself",
        }
    dest.mkdir(mode=0o700)
    files, missing = [], []
    for locator in sorted(set(locators)):
        name = PurePath(locator).name
        source = Path(locator)  # what the server reads (LocalStorage: <uploads_dir>/<uuid>.txt)
        try:
            files.append({"name": name, **_copy_hashed(source, dest / name)})
        except FileNotFoundError:
            missing.append(name)  # its batch was deleted after the snapshot
    return {
        "included": True,
        "directory": UPLOADS,
        "source": str(settings.uploads_dir.resolve()),
        "files": files,
        "missing": missing,
    }


# -- restore ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where a restore writes: what the server started with these settings would use."""

    database: Path
    secret: Path
    uploads: Path


def _restore(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings.is_postgres:
        print(postgres_help(settings.database_url), file=sys.stderr)
        return 1
    try:
        manifest, target = restore_backup(settings, args.path, force=args.force)
    except Refused as exc:
        return _refused(str(exc))
    print(_restored(manifest, target))
    return 0


def restore_backup(
    settings: Settings, path: Path, *, force: bool = False
) -> tuple[dict[str, Any], Target]:
    """Restore the backup at ``path`` where ``settings`` point; :class:`Refused` (nothing
    written) when it is damaged or would replace something, unless ``force``."""
    manifest = read_backup(path)
    target = _target(settings)
    problems = _conflicts(settings, manifest, path, target)
    if problems and not force:
        raise Refused(
            "nothing was restored:\n  - "
            + "\n  - ".join(problems)
            + "\nStop the server and add --force to replace them."
        )
    _put(settings, manifest, path, target)
    return manifest, target


def read_backup(path: Path) -> dict[str, Any]:
    """The manifest of the backup at ``path``, after checking every file it lists."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise Refused(f"{path} is not a backup: it has no {MANIFEST}") from None
    except ValueError as exc:
        raise Refused(f"{path / MANIFEST} is not valid JSON: {exc}") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise Refused(f"{path / MANIFEST} is not an {FORMAT} manifest of version {VERSION}")
    _check_file(path / DATABASE, manifest["database"])
    if manifest["secret_key"].get("file"):
        _check_file(path / SECRET, manifest["secret_key"])
    uploads = manifest["uploads"]
    for entry in uploads["files"] if uploads.get("included") else ():
        _check_file(path / UPLOADS / entry["name"], entry)
    _check_revision(manifest.get("schema_revision"))
    return dict(manifest)


def _check_file(path: Path, facts: dict[str, Any]) -> None:
    if not path.is_file():
        raise Refused(f"the backup is incomplete: {path} is missing")
    if _file_facts(path) != {"bytes": facts["bytes"], "sha256": facts["sha256"]}:
        raise Refused(f"the backup is damaged: {path} is not the file its manifest lists")


def _check_revision(revision: str | None) -> None:
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    if revision is None:
        raise Refused("the backup's manifest names no schema revision")
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    try:
        script.get_revision(revision)
    except CommandError:
        raise Refused(
            f"the backup's schema {revision} is newer than this version of ApexVerify knows: "
            "restore it with the version that wrote it"
        ) from None


def _target(settings: Settings) -> Target:
    database = sqlite_file(settings.database_url)
    assert database is not None
    return Target(database, settings.data_dir / SECRET, settings.uploads_dir)


def _conflicts(
    settings: Settings, manifest: dict[str, Any], path: Path, target: Target
) -> list[str]:
    """What the restore would replace or contradict; empty on a fresh data directory."""
    problems = []
    if any(Path(f"{target.database}{end}").exists() for end in ("", "-wal", "-shm")):
        problems.append(f"a database exists at {target.database.resolve()}")
    problems += _secret_conflicts(settings, manifest["secret_key"], path, target)
    uploads = manifest["uploads"]
    if uploads.get("included") and settings.storage_url:
        raise Refused(
            f"this server keeps uploads in {settings.storage_url}; the backup's are files: "
            "restore onto local storage, or copy its uploads/ into the bucket yourself"
        )
    for entry in uploads["files"] if uploads.get("included") else ():
        existing = target.uploads / entry["name"]
        if existing.exists() and _file_facts(existing)["sha256"] != entry["sha256"]:
            problems.append(f"a different upload exists at {existing}")
    return problems


def _secret_conflicts(
    settings: Settings, secret: dict[str, Any], path: Path, target: Target
) -> list[str]:
    kept = secret.get("fingerprint")
    if settings.secret_key:
        ours = fingerprint(load_secret(settings.secret_key, settings.data_dir))
        if kept is not None and ours != kept:
            return [
                "APEXVERIFY_SECRET_KEY is not the secret of the backup (caches, dashboard "
                "sessions and webhook secrets were keyed with that one)"
            ]
        return []
    if secret.get("source") == "APEXVERIFY_SECRET_KEY":
        return ["the backup's server used APEXVERIFY_SECRET_KEY: set the same value here"]
    differs = (
        target.secret.exists()
        and secret.get("file")
        and _file_facts(target.secret)["sha256"] != _file_facts(path / SECRET)["sha256"]
    )
    return [f"a different secret key exists at {target.secret}"] if differs else []


def _put(settings: Settings, manifest: dict[str, Any], path: Path, target: Target) -> None:
    """Uploads and secret first, the database last: until it is in place nothing is
    restored, and a restore that failed half-way can be run again without --force."""
    uploads = manifest["uploads"]
    if uploads.get("included"):
        target.uploads.mkdir(parents=True, exist_ok=True)
        for entry in uploads["files"]:
            _place(path / UPLOADS / entry["name"], target.uploads / entry["name"])
    if manifest["secret_key"].get("file") and not settings.secret_key:
        target.secret.parent.mkdir(parents=True, exist_ok=True)
        _write_private(target.secret, (path / SECRET).read_bytes())
    target.database.parent.mkdir(parents=True, exist_ok=True)
    staged = target.database.with_name(target.database.name + ".restoring")
    shutil.copyfile(path / DATABASE, staged)
    staged.chmod(0o600)
    # Also without the uploads (--no-uploads): a locator left pointing at the backed-up
    # server's file would let this server delete that file with its batch.
    _relocate_uploads(staged, target.uploads)
    # A WAL or shared-memory file of a replaced database would be applied to this one.
    for end in ("-wal", "-shm"):
        Path(f"{target.database}{end}").unlink(missing_ok=True)
    staged.replace(target.database)


def _relocate_uploads(database: Path, uploads: Path) -> None:
    """Point the batches at their files in this server's upload directory: a locator is the
    absolute path of the upload (storage/__init__.py), which was the backed-up server's.
    Without this, deleting a restored batch would delete the original server's file."""
    db = sqlite3.connect(database)
    try:
        with db:
            rows = db.execute("SELECT pk, file_path FROM batches").fetchall()
            db.executemany(
                "UPDATE batches SET file_path = ? WHERE pk = ?",
                [
                    (str(uploads / PurePath(locator).name), pk)
                    for pk, locator in rows
                    if not locator.startswith("s3://")
                ],
            )
    finally:
        db.close()


def _place(source: Path, dest: Path) -> None:
    staged = dest.with_name(dest.name + PART)
    shutil.copyfile(source, staged)
    staged.replace(dest)


# -- messages --------------------------------------------------------------------------------


def postgres_help(database_url: str) -> str:
    given = make_url(database_url)
    # Rebuilt without the password (URL.set(password=None) would keep it).
    url = URL.create(
        "postgresql", given.username, None, given.host, given.port, given.database, given.query
    )
    source = url.render_as_string(hide_password=False)
    restored = url.set(database=f"{url.database}_restored").render_as_string(hide_password=False)
    stamp = "$(date -u +%Y%m%dT%H%M%SZ)"
    return f"""\
apexverify backup and restore copy SQLite databases. This one is PostgreSQL (scale-out mode):
back it up with PostgreSQL's tools, which take a consistent snapshot while everything runs:

  pg_dump --format=custom --file=apexverify-{stamp}.dump '{source}'

and restore into a new, empty database, with the API processes and workers stopped:

  createdb --template=template0 {url.database}_restored
  pg_restore --no-owner --exit-on-error --dbname='{restored}' apexverify-....dump

(the password comes from PGPASSWORD or ~/.pgpass). Keep with it APEXVERIFY_SECRET_KEY (the
caches, dashboard sessions and webhook secrets are keyed with it) and the uploads
(APEXVERIFY_STORAGE_DIR/uploads, or the S3 bucket). docs/deployment.md, "Backups"."""


def _summary(path: Path, manifest: dict[str, Any]) -> str:
    counts = manifest["counts"]
    uploads = manifest["uploads"]
    files = (
        f"{len(uploads['files'])} upload files"
        + (f" ({len(uploads['missing'])} deleted meanwhile)" if uploads["missing"] else "")
        if uploads["included"]
        else f"no uploads ({uploads['reason']})"
    )
    secret = {
        "file": "the secret key",
        "APEXVERIFY_SECRET_KEY": "not the secret key (APEXVERIFY_SECRET_KEY: keep it yourself)",
        "none": "no secret key (none generated yet)",
    }[manifest["secret_key"]["source"]]
    return (
        f"backup written to {path}: the database (schema {manifest['schema_revision']}; "
        f"accounts: {counts.get('accounts', 0)}, batches: {counts.get('batches', 0)}, "
        f"records: {counts.get('records', 0)}), {secret}, {files}.\n"
        "It holds the secret key and every account's data: keep it private."
    )


def _restored(manifest: dict[str, Any], target: Target) -> str:
    return (
        f"restored the backup of {manifest['created_at']} (schema "
        f"{manifest['schema_revision']}) to {target.database.resolve()}.\n"
        "Start the server with these same settings (it migrates the schema at start, or run "
        "`apexverify migrate` first)."
    )


# -- files -----------------------------------------------------------------------------------


def fingerprint(secret: bytes) -> str:
    """Tells two secrets apart without revealing either (a hash of the derived key)."""
    return hashlib.sha256(b"apexverify-backup-fingerprint:" + secret).hexdigest()[:16]


def _file_secret(path: Path) -> bytes:
    return bytes.fromhex(path.read_text().strip())  # the format load_secret writes


def _file_facts(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return {"bytes": size, "sha256": digest.hexdigest()}


def _copy_hashed(source: Path, dest: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as read, dest.open("xb") as write:
        while chunk := read.read(_CHUNK):
            digest.update(chunk)
            write.write(chunk)
            size += len(chunk)
    return {"bytes": size, "sha256": digest.hexdigest()}


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
