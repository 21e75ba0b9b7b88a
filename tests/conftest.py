"""Shared fixtures: a live server per test module, and a sandbox account on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import LiveServer, start_server


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("server"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_key(live_server: LiveServer) -> str:
    return live_server.create_account(sandbox=True)[0]


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[object]:
    """Start extra servers with custom settings: ``make_server(APEXVERIFY_X="1")``."""
    servers: list[LiveServer] = []

    def factory(name: str = "srv", **env: str) -> LiveServer:
        server = start_server(tmp_path / f"{name}{len(servers)}", **env)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()
