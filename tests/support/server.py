"""A real ``apexverify serve`` process on a free loopback port, with its own SQLite database
and data directory: what the end-to-end tests talk to over HTTP."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from apexverify.accounts import service as accounts
from apexverify.settings import Settings
from apexverify.store.migrate import open_store

BIN = Path(sys.executable).with_name("apexverify")


# Ports handed to servers come from below Linux's ephemeral range (32768-60999): a port
# the kernel picked (bind to 0) is also a candidate local port of every outgoing connection,
# so once it is released (a server killed to test a restart) a test's own client connection
# can take it, and the restarted server finds it in use (seen under make test's load).
_PORTS = range(20000, 32000)


def free_port() -> int:
    """A loopback TCP port that is free now, outside the ephemeral range."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.choice(_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port between 20000 and 32000")


class _Managed:
    """Stop and kill for a child process held in ``self.process``."""

    process: subprocess.Popen[bytes] | None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no heartbeat stop, as after a crash or a lost machine."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@dataclass
class LiveServer(_Managed):
    data_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        log = (self.data_dir / "server.log").open("ab")
        self.process = subprocess.Popen(
            [str(BIN), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        path = self.data_dir / "server.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def cli(self, *args: str) -> str:
        """Run an admin CLI command against this server's database; returns stdout."""
        done = subprocess.run(
            [str(BIN), *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            cwd=self.data_dir,
        )
        if done.returncode != 0:
            raise RuntimeError(f"apexverify {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def create_account(
        self, *, sandbox: bool = True, email_credits: float = 1000, phone_credits: float = 1000
    ) -> tuple[str, str]:
        """A new account in the server's database; returns ``(api_key, account_id)``.

        Through the accounts service the ``account create`` command calls (tested as a
        command in tests/client/test_admin_cli.py), in this process: a command per account
        cost every test about two seconds of CPU importing the application."""
        settings = Settings.from_env(self.env)
        store = open_store(settings.database_url, create=False)
        try:
            with store.write() as session:
                account, key = accounts.create_account(
                    session,
                    "test",
                    sandbox=sandbox,
                    email_credits=email_credits,
                    phone_credits=phone_credits,
                )
                created = (key.api_key, account.id)
        finally:
            store.dispose()
        return created

    def restart(self) -> None:
        self.stop()
        self.start()


def settings_env(values: Mapping[str, Any]) -> dict[str, str]:
    """``Settings`` field values as the ``APEXVERIFY_*`` variables a server reads (lists
    comma-separated, booleans lower case)."""
    env = {}
    for name, value in values.items():
        if isinstance(value, list):
            text = ",".join(str(item) for item in value)
        elif isinstance(value, bool):
            text = str(value).lower()
        else:
            text = str(value)
        env[f"APEXVERIFY_{name.upper()}"] = text
    return env


def server_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APEXVERIFY_")}
    env.update(
        APEXVERIFY_DATABASE_URL=f"sqlite:///{data_dir / 'apexverify.db'}",
        APEXVERIFY_DATA_DIR=str(data_dir / "var"),
        PYTHONUNBUFFERED="1",
        # Tests poll fast; the rate-limit tests set their own limit.
        APEXVERIFY_RATE_LIMIT_PER_MINUTE="100000",
    )
    if "APEXVERIFY_DNS_NAMESERVERS" not in overrides:
        # No test asks the machine's resolver: without a lab DNS server there is nothing the
        # DNS canaries could honestly check (the lab serves them when a test points at it).
        env["APEXVERIFY_DNS_CANARIES"] = ""
    env.update(overrides)
    return env


def start_server(tmp_path: Path, **env: str) -> LiveServer:
    """Start a server whose state lives under ``tmp_path``; ``env`` overrides settings."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    return LiveServer(data_dir=tmp_path, env=server_env(tmp_path, **env)).start()


@dataclass
class LiveWorker(_Managed):
    """An ``apexverify worker`` process (scale-out mode) sharing a server's settings."""

    data_dir: Path
    env: dict[str, str]
    concurrency: int = 2
    name: str = "worker"
    extra_args: tuple[str, ...] = ()  # e.g. ("--metrics-port", "9100")
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> LiveWorker:
        log = (self.data_dir / f"{self.name}.log").open("ab")
        self.process = subprocess.Popen(
            [str(BIN), "worker", "--concurrency", str(self.concurrency), *self.extra_args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,
        )
        return self

    def log_tail(self, lines: int = 40) -> str:
        path = self.data_dir / f"{self.name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def start_worker(
    data_dir: Path,
    env: dict[str, str],
    concurrency: int = 2,
    name: str = "worker",
    extra_args: tuple[str, ...] = (),
) -> LiveWorker:
    """Start a worker with the same environment (database, storage) as a server."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return LiveWorker(
        data_dir=data_dir,
        env=dict(env),
        concurrency=concurrency,
        name=name,
        extra_args=extra_args,
    ).start()
