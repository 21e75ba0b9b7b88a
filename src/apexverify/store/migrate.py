"""Run Alembic migrations programmatically (``apexverify migrate``, ``make serve``, tests),
say what they did (:class:`MigrationReport`), and refuse to create a database where one is
expected to exist (:func:`require_database`: the admin commands)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import inspect, make_url

from ..errors import ConfigurationError
from .db import Store, sqlite_file

_URL = "APEXVERIFY_DATABASE_URL"

_MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def open_store(database_url: str, *, create: bool = True) -> Store:
    """The database alone, migrated. ``create=False`` (the admin commands) refuses, creating
    nothing, when there is no database there yet: :func:`require_database`."""
    if not create:
        require_database(database_url)
    store = Store(database_url)
    upgrade(store)
    return store


@dataclass(frozen=True)
class MigrationReport:
    """What :func:`upgrade` did; ``str()`` is the sentence ``apexverify migrate`` prints."""

    where: str  # the SQLite file, or the PostgreSQL URL without its password
    before: str | None  # the revision found; None: no schema at all (a new database)
    after: str
    applied: int
    sqlite: bool
    steps: tuple[str, ...] = ()  # "0005 webhooks: ..." for each migration applied, in order

    def __str__(self) -> str:
        if self.before is None:
            made = "created a new database at" if self.sqlite else "created the schema in"
            return (
                f"{made} {self.where} and applied {self.applied} migrations: "
                f"it is at the latest schema ({self.after})"
            )
        if self.applied == 0:
            return f"the database at {self.where} is already at the latest schema ({self.after})"
        return (
            f"upgraded the database at {self.where} from {self.before} to {self.after} "
            f"({self.applied} migrations): it is at the latest schema"
            + "".join(f"\n  {step}" for step in self.steps)
        )


def location(url: str) -> str:
    """Where a database is, fit for a message: the absolute SQLite path, or the URL without
    its password."""
    path = sqlite_file(url)
    if path is not None:
        return str(path.resolve())
    parsed = make_url(url)
    return parsed.set(drivername=parsed.get_backend_name()).render_as_string(hide_password=True)


def upgrade(store: Store) -> MigrationReport:
    cfg = alembic_config(store.url)
    script = ScriptDirectory.from_config(cfg)
    head = script.get_current_head() or "base"
    with store.engine.begin() as conn:
        before = MigrationContext.configure(conn).get_current_revision()
        _check_known(script, before, store.url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    applied = list(reversed(list(script.iterate_revisions("head", before or "base"))))
    steps = tuple(f"{step.revision} {step.doc}" for step in applied)
    return MigrationReport(location(store.url), before, head, len(applied), store.is_sqlite, steps)


def _check_known(script: ScriptDirectory, revision: str | None, url: str) -> None:
    """A schema newer than this code (a downgraded install, a backup of a newer version)."""
    if revision is None:
        return
    try:
        script.get_revision(revision)
    except CommandError:
        raise ConfigurationError(
            _URL,
            f"the database at {location(url)} is at schema {revision}, which this version of "
            "ApexVerify does not know (it is newer): install the version that wrote it",
        ) from None


def require_database(database_url: str) -> None:
    """Raise :class:`ConfigurationError` unless ``database_url`` names an existing ApexVerify
    database; creates nothing (no file, no directory, no table)."""
    path = sqlite_file(database_url)
    if path is not None and not path.is_file():
        where = f"{path.resolve()}"
        if not path.is_absolute():
            where += f" ({path} relative to the working directory {os.getcwd()})"
        raise ConfigurationError(_URL, f"no database at {where}; nothing was created. {_HINT}")
    store = Store(database_url)
    try:
        with store.engine.connect() as conn:
            found = inspect(conn).has_table("alembic_version")
    finally:
        store.dispose()
    if not found:
        raise ConfigurationError(
            _URL, f"the database at {location(database_url)} has no ApexVerify schema. {_HINT}"
        )


_HINT = (
    "Run the command where the server runs (the directory of its var/), or give it the "
    "server's settings: APEXVERIFY_DATABASE_URL and APEXVERIFY_DATA_DIR, or "
    "--env-file FILE / APEXVERIFY_ENV_FILE (docs/deployment.md). "
    "`apexverify migrate` creates a new database."
)
