"""The processes of a real ``apexverify serve`` beside it hold only what they run.

Started by forkserver, a child would otherwise import the console script's main module, and
with it the whole CLI and web app (95 MB of RSS per idle parse worker instead of about 30).
The server starts one job process (parses and sandbox chunks run there: jobs/process_host.py),
and the job process starts the parse workers."""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from tests.api.helpers import Api
from tests.support.processes import alive


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def _forked(pid: int) -> list[psutil.Process]:
    """The processes started for ``pid``: the children of the forkserver it started."""
    started = []
    for child in psutil.Process(pid).children():
        if "forkserver" in " ".join(child.cmdline()):
            started += child.children()
    return started


def test_the_job_process_and_the_parse_workers_do_not_load_the_web_app(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(APEXVERIFY_PARSE_WORKERS="2")
    assert server.process is not None
    # The web server's compiled modules: in the server, as a control for the checks below.
    assert "httptools" in _maps(server.process.pid)
    assert "pydantic_core" in _maps(server.process.pid)
    # A parse big enough for the pool (over 1 MB): its workers have run their first range,
    # so they are past their start-up imports.
    api = Api(server.base_url, server.create_account()[0])
    api.ready("\n".join(f"user{i}@example{i % 97}.com" for i in range(60_000)))
    hosts = _forked(server.process.pid)
    assert len(hosts) == 1, [h.cmdline() for h in hosts]
    assert "httptools" not in _maps(hosts[0].pid)
    workers = _forked(hosts[0].pid)
    assert len(workers) == 2
    for worker in workers:
        assert "pydantic_core" not in _maps(worker.pid), worker.cmdline()


def test_without_the_job_process_the_server_starts_the_parse_workers(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(APEXVERIFY_PARSE_WORKERS="2", APEXVERIFY_JOB_PROCESS="false")
    assert server.process is not None
    api = Api(server.base_url, server.create_account()[0])
    api.ready("\n".join(f"user{i}@example{i % 97}.com" for i in range(60_000)))
    workers = _forked(server.process.pid)
    assert len(workers) == 2
    for worker in workers:
        assert "pydantic_core" not in _maps(worker.pid), worker.cmdline()


def test_after_a_kill_9_of_the_server_its_job_process_and_workers_end(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(APEXVERIFY_PARSE_WORKERS="2")
    assert server.process is not None
    api = Api(server.base_url, server.create_account()[0])
    api.ready("\n".join(f"user{i}@example{i % 97}.com" for i in range(60_000)))
    # The job process, its parse workers, and the two forkservers that started them.
    family = [p.pid for p in psutil.Process(server.process.pid).children(recursive=True)]
    hosts = _forked(server.process.pid)
    assert len(hosts) == 1
    assert len(_forked(hosts[0].pid)) == 2
    server.process.kill()
    server.process.wait(10)
    deadline = time.monotonic() + 15  # a bound on the wait, not a figure under test
    while any(alive(pid) for pid in family) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in family if alive(pid)], f"still running: {family}"
