"""A bad configuration stops ``apexverify serve``, ``worker`` and ``migrate`` at start-up,
with a message naming the ``APEXVERIFY_*`` variable, before anything listens, migrates or
connects (the composition root validates settings and engines first: ``Settings.from_env``,
then ``EngineFactory.check`` in ``build_services``, before the store or the queue exist).

Real processes: each command must exit by itself (bounded by a generous subprocess timeout).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.server import free_port

BIN = Path(sys.executable).with_name("apexverify")
TIMEOUT = 60  # seconds: a bound on a command that should exit at once, not an assertion

BAD_CONFIGS = {
    "hlrlookup-without-key": ({"APEXVERIFY_PHONE_LOOKUP_PROVIDER": "hlrlookup"}, "HLR_API_KEY"),
    "unknown-provider": (
        {"APEXVERIFY_PHONE_LOOKUP_PROVIDER": "carrier-pigeon"},
        "PHONE_LOOKUP_PROVIDER",
    ),
    "port-not-a-number": ({"APEXVERIFY_PORT": "eighty"}, "PORT"),
}


@dataclass
class Exited:
    returncode: int
    stdout: str
    stderr: str


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def base_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APEXVERIFY_")}
    env.update(
        APEXVERIFY_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}",
        APEXVERIFY_DATA_DIR=str(tmp_path / "var"),
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def run(tmp_path: Path, env: dict[str, str], *args: str) -> Exited:
    try:
        done = subprocess.run(
            [str(BIN), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
            cwd=tmp_path,
        )
    except subprocess.TimeoutExpired as exc:  # run() has killed it
        pytest.fail(f"apexverify {' '.join(args)} did not exit: {exc.stderr!r}")
    return Exited(done.returncode, done.stdout, done.stderr)


def assert_configuration_error(exited: Exited, variable: str) -> None:
    assert exited.returncode != 0, exited
    assert exited.returncode == 2, exited  # main(): a ConfigurationError exits 2
    # The message names the setting to fix (first: hlrlookup's message also names the
    # provider variable as the reason).
    assert f"configuration error: APEXVERIFY_{variable}:" in exited.stderr, exited.stderr
    assert "Traceback" not in exited.stderr, exited.stderr


@pytest.fixture
def pg_lookalike() -> Iterator[tuple[int, socket.socket]]:
    """A listening socket standing in for PostgreSQL: any connection attempt would show up as
    a pending connection in its backlog."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    try:
        yield int(sock.getsockname()[1]), sock
    finally:
        sock.close()


def connections(sock: socket.socket) -> int:
    accepted = 0
    while True:
        try:
            conn, _addr = sock.accept()
        except BlockingIOError:
            return accepted
        conn.close()
        accepted += 1


@pytest.mark.parametrize("config", list(BAD_CONFIGS), ids=list(BAD_CONFIGS))
def test_serve_with_a_bad_configuration_exits_and_never_listens(
    tmp_path: Path, config: str
) -> None:
    overrides, variable = BAD_CONFIGS[config]
    port = free_port()
    exited = run(
        tmp_path,
        base_env(tmp_path, **overrides),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    )
    assert_configuration_error(exited, variable)
    assert not listening(port)
    assert "Uvicorn running" not in exited.stdout + exited.stderr
    assert not (tmp_path / "db.sqlite").exists()  # stopped before the database was touched


def test_serve_with_the_port_only_in_the_environment_exits(tmp_path: Path) -> None:
    # Without --port, APEXVERIFY_PORT is the one that would be used.
    exited = run(tmp_path, base_env(tmp_path, APEXVERIFY_PORT="eighty"), "serve")
    assert_configuration_error(exited, "PORT")
    assert "eighty" in exited.stderr  # what was wrong (not a secret)


def test_serve_with_an_hlr_key_but_no_secret_names_the_missing_pair(tmp_path: Path) -> None:
    env = base_env(
        tmp_path,
        APEXVERIFY_PHONE_LOOKUP_PROVIDER="hlrlookup",
        APEXVERIFY_HLR_API_KEY="sekrit-key-123",
    )
    port = free_port()
    exited = run(tmp_path, env, "serve", "--host", "127.0.0.1", "--port", str(port))
    assert_configuration_error(exited, "HLR_API_SECRET")
    assert "sekrit-key-123" not in exited.stderr  # credentials never in messages
    assert not listening(port)


# One bad configuration each for worker and migrate: serve covers every kind above, and the
# three commands share the one check (composition.build_services).
ONE_BAD = ["hlrlookup-without-key"]


@pytest.mark.parametrize("config", ONE_BAD, ids=ONE_BAD)
def test_worker_with_a_bad_configuration_exits_before_connecting(
    tmp_path: Path, config: str, pg_lookalike: tuple[int, socket.socket]
) -> None:
    overrides, variable = BAD_CONFIGS[config]
    pg_port, pg = pg_lookalike
    env = base_env(
        tmp_path, APEXVERIFY_DATABASE_URL=f"postgresql://127.0.0.1:{pg_port}/test", **overrides
    )
    exited = run(tmp_path, env, "worker", "--concurrency", "1")
    assert_configuration_error(exited, variable)
    assert connections(pg) == 0  # the database was never contacted


def test_worker_on_sqlite_is_refused(tmp_path: Path) -> None:
    exited = run(tmp_path, base_env(tmp_path), "worker")
    assert exited.returncode != 0
    assert "APEXVERIFY_DATABASE_URL" in exited.stderr, exited.stderr


@pytest.mark.parametrize("config", ONE_BAD, ids=ONE_BAD)
def test_migrate_with_a_bad_configuration_exits_without_migrating(
    tmp_path: Path, config: str
) -> None:
    overrides, variable = BAD_CONFIGS[config]
    exited = run(tmp_path, base_env(tmp_path, **overrides), "migrate")
    assert_configuration_error(exited, variable)
    assert "latest schema" not in exited.stdout
    assert not (tmp_path / "db.sqlite").exists()


def test_migrate_with_a_good_configuration_succeeds(tmp_path: Path) -> None:
    """The control: the same command, environment and binary work when the setting is
    fixed, so the failures above are the configuration's."""
    exited = run(tmp_path, base_env(tmp_path), "migrate")
    assert exited.returncode == 0, exited
    assert "latest schema" in exited.stdout
    assert (tmp_path / "db.sqlite").exists()


def test_serve_with_a_good_configuration_listens(tmp_path: Path) -> None:
    """The control for serve: the same invocation starts and listens once configured."""
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [str(BIN), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=base_env(tmp_path),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not listening(port):
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "serve did not start listening"
            time.sleep(0.1)
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(15)
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
