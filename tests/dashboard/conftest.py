"""Fixtures for the dashboard: a live server tuned so progress is visible, and headless
Chromium (Debian's package, driven by Playwright) when this machine has it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import LiveServer, start_server

CHROMIUM = shutil.which("chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
# The flags a root, offline machine needs: no sandbox, no GPU, and no background calls home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def dash_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # Small chunks with a simulated latency: a few hundred sandbox rows take a few seconds
    # (4 chunks at a time), so the progress bar is seen moving before it reaches done.
    server = start_server(
        tmp_path_factory.mktemp("dash"),
        APEXVERIFY_SANDBOX_LATENCY_MS="800",
        APEXVERIFY_VERIFY_CHUNK_SIZE="40",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine: `make test` installs Debian's (needs root/apt)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
