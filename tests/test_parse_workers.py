"""The parse workers of a real ``apexverify serve`` hold the parse's code only: started by
forkserver, they would otherwise import the console script's main module, and with it the
whole CLI and web app (95 MB of RSS per idle worker instead of about 30 MB)."""

from __future__ import annotations

from pathlib import Path

import psutil

from tests.api.helpers import Api


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def _parse_workers(server_pid: int) -> list[psutil.Process]:
    """The pool's workers: the children of the forkserver the server started."""
    workers = []
    for child in psutil.Process(server_pid).children():
        if "forkserver" in " ".join(child.cmdline()):
            workers += child.children()
    return workers


def test_parse_workers_do_not_load_the_web_app(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(APEXVERIFY_PARSE_WORKERS="2")
    assert server.process is not None
    # The web app's own compiled module: in the server, as a control for the check below.
    assert "pydantic_core" in _maps(server.process.pid)
    # A parse big enough for the pool (over 1 MB): its workers have run their first range,
    # so they are past their start-up imports.
    api = Api(server.base_url, server.create_account()[0])
    api.ready("\n".join(f"user{i}@example{i % 97}.com" for i in range(60_000)))
    workers = _parse_workers(server.process.pid)
    assert len(workers) == 2
    for worker in workers:
        assert "pydantic_core" not in _maps(worker.pid), worker.cmdline()
