"""Run Alembic migrations programmatically (``apexverify migrate``, ``make serve``, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from .db import Store

_MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def open_store(database_url: str) -> Store:
    """The database alone, migrated (the admin commands)."""
    store = Store(database_url)
    upgrade(store)
    return store


def upgrade(store: Store) -> None:
    cfg = alembic_config(store.url)
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
