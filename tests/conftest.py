"""Shared fixtures: a live server per test module and a sandbox account on it (the real
tier), and an in-process lab (the fast tier: ``lab``, marked ``fast``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.fast import Lab, open_lab
from tests.support.server import LiveServer, start_server


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    """The app and its services in this process: fresh SQLite, recording queue, fake engine."""
    async with open_lab(tmp_path) as opened:
        yield opened


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


# The fast tier: tests of the services and the in-process app that start no server process.
_FAST_DIRS = {"batches", "jobs", "store", "accounts", "export", "webhooks"}


# Tests of the shared services (one PostgreSQL database, one Redis DB that the scale-out
# fixtures flush): under pytest-xdist (`--dist loadgroup`) they all run on one worker.
_SHARED_SERVICES = ("scaleout", "api/test_rate_limit.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        relative = item.path.relative_to(Path(__file__).parent)
        parts = relative.parts
        if parts and parts[0] in _FAST_DIRS:
            item.add_marker(pytest.mark.fast)
        if any(relative.as_posix().startswith(prefix) for prefix in _SHARED_SERVICES):
            item.add_marker(pytest.mark.xdist_group("shared-services"))
