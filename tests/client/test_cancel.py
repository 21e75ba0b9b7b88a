"""Cancel from the SDK and the CLI: typed answers offline (MockTransport), then against a live
server whose sandbox engine is slowed down so a launched batch is still running when the
cancel comes: ``Client.cancel``/``AsyncClient.cancel``, ``apexverify batches cancel`` and the
Ctrl-C offer of ``apexverify verify`` (SIGINT, then the answer on stdin)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from apexverify.client import APIError, AsyncClient, BatchStatus, Client
from apexverify.client._models import Cancellation
from tests.client.test_cli import BIN, run
from tests.support.server import LiveServer, start_server

ANSWER = {"status": "ok", "records_cancelled": 7, "refunded_credits": 7.5}
ROWS = 1000  # 50 chunks of 20 at 1 s each, 4 at a time: ~13 s if nobody cancels


def _mock(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/v1/batch/u1/cancel" and request.method == "POST":
        return httpx.Response(200, json=ANSWER)
    return httpx.Response(409, json={"message": "The batch was already cancelled."})


def test_cancel_returns_its_type_and_409_is_an_api_error() -> None:
    client = Client("k", "http://api.test", max_retries=1)
    client._http = httpx.Client(base_url=client.base_url, transport=httpx.MockTransport(_mock))
    with client:
        assert client.cancel("u1") == Cancellation(7, 7.5, ANSWER)
        with pytest.raises(APIError, match="already cancelled") as refused:
            client.cancel("u2")
        assert refused.value.status_code == 409
    done = BatchStatus.parse(
        {"status": "verification_done", "cancelled": True, "cancelled_at": "2026-01-01T00:00:00Z"}
    )
    assert (done.cancelled, done.cancelled_at) == (True, "2026-01-01T00:00:00Z")
    assert BatchStatus.parse({"status": "verification_done"}).cancelled is False


async def test_async_cancel_returns_the_same_type() -> None:
    client = AsyncClient("k", "http://api.test")
    client._http = httpx.AsyncClient(base_url=client.base_url, transport=httpx.MockTransport(_mock))
    async with client:
        assert await client.cancel("u1") == Cancellation(7, 7.5, ANSWER)


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path_factory.mktemp("slow"),
        APEXVERIFY_SANDBOX_LATENCY_MS="1000",
        APEXVERIFY_VERIFY_CHUNK_SIZE="20",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def key(slow_server: LiveServer) -> str:
    return slow_server.create_account()[0]


@pytest.fixture
def contacts(tmp_path: Path) -> Path:
    path = tmp_path / "c.txt"
    path.write_text("".join(f"user{i}@example.com\n" for i in range(ROWS)))
    return path


def _ready(client: Client, batch_uuid: str) -> None:
    while client.status(batch_uuid).status != "ready_for_verification":
        time.sleep(0.05)


def test_sdk_cancels_a_running_batch(slow_server: LiveServer, key: str, contacts: Path) -> None:
    with Client(key, slow_server.base_url) as client:
        batch_uuid = client.upload(contacts, name="c", type="email", target_country="US").batch_uuid
        _ready(client, batch_uuid)
        assert client.launch(batch_uuid) == "ok"
        cancelled = client.cancel(batch_uuid)
        assert 0 < cancelled.records_cancelled <= ROWS
        assert cancelled.refunded_credits == 0.0  # a sandbox account is never charged
        status = client.status(batch_uuid)
        assert status.done
        assert status.cancelled
        assert status.stats is not None
        assert status.stats["total_verification_cancelled"] == cancelled.records_cancelled
        with pytest.raises(APIError, match="already cancelled"):
            client.cancel(batch_uuid)


def _ongoing_batch(server: LiveServer, key: str, process: subprocess.Popen[str]) -> str:
    """The batch the CLI launched, once the server says it runs."""
    with Client(key, server.base_url) as client:
        while process.poll() is None:
            running = [
                b for b in client.list_batches().batches if b.status == "verification_ongoing"
            ]
            if running:
                return running[0].batch_uuid
            time.sleep(0.05)
    raise AssertionError(f"the CLI exited first: {process.communicate()}")


def test_ctrl_c_while_waiting_offers_to_cancel(slow_server: LiveServer, contacts: Path) -> None:
    key, _account = slow_server.create_account()  # its own: the only batch it runs is ours
    env = {**slow_server.env, "APEXVERIFY_URL": slow_server.base_url, "APEXVERIFY_API_KEY": key}
    process = subprocess.Popen(
        [BIN, "verify", str(contacts), "--yes", "--json", "--poll", "0.2"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    batch_uuid = _ongoing_batch(slow_server, key, process)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate("y\n", timeout=60)

    assert process.returncode == 0, err
    assert f"Cancel batch {batch_uuid}? [y/N]" in err
    answer = json.loads(out)
    assert answer["batch_uuid"] == batch_uuid
    assert answer["status"] == "ok"
    assert answer["records_cancelled"] > 0
    with Client(key, slow_server.base_url) as client:
        status = client.status(batch_uuid)
        rows = json.loads(client.export(batch_uuid, "json"))
    assert status.done
    assert status.cancelled
    cancelled = [
        v for k, v in rows.items() if k != "_statistics" and v.get("evidence") == "cancelled"
    ]
    assert len(cancelled) == answer["records_cancelled"]


def test_batches_cancel_command(slow_server: LiveServer, key: str, contacts: Path) -> None:
    with Client(key, slow_server.base_url) as client:
        batch_uuid = client.upload(contacts, name="c", type="email", target_country="US").batch_uuid
        _ready(client, batch_uuid)
        not_running = run(slow_server, key, "batches", "cancel", batch_uuid)
        assert not_running.returncode == 1
        assert "delete it instead" in not_running.stderr
        client.launch(batch_uuid)
        done = run(slow_server, key, "batches", "cancel", batch_uuid)
        assert done.returncode == 0, done.stderr
        assert f"cancelled {batch_uuid}" in done.stdout
        assert "credits refunded" in done.stdout
        again = run(slow_server, key, "batches", "cancel", batch_uuid)
        assert again.returncode == 1
        assert "already cancelled" in again.stderr
