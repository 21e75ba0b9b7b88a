"""The SDK against a live server (sandbox accounts): workflow, resume, 429, 402, errors."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest

import apexverify.client as sdk
from apexverify.client import AsyncClient, Client
from tests.support.server import LiveServer

EMAILS = ["valid@example.com", "invalid@example.com", "unknown@example.org", "role@shop.io"]


@pytest.fixture
def contacts(tmp_path: Path) -> Path:
    path = tmp_path / "contacts.txt"
    path.write_text("\n".join(EMAILS) + "\n")
    return path


def test_all_is_complete() -> None:
    public = {
        n for n in dir(sdk) if (not n.startswith("_") and n[0].isupper()) or n == "verify_file"
    }
    assert public <= set(sdk.__all__)


def test_verify_file_end_to_end(
    live_server: LiveServer, api_key: str, contacts: Path, tmp_path: Path
) -> None:
    seen: list[str] = []
    asked: list[float] = []

    def confirm(status: sdk.BatchStatus) -> bool:
        assert status.cost is not None
        asked.append(status.cost.net)
        return True

    with Client(api_key, live_server.base_url) as client:
        result = client.verify_file(
            contacts,
            type="email",
            target_country="US",
            initial_delay=0.05,
            outputs=[tmp_path / "r.json", tmp_path / "r.xlsx"],
            confirm=confirm,
            on_progress=lambda s: seen.append(s.status),
        )
    assert asked == [4.0]
    assert result.status.done
    assert result.status.stats["total_verification"] == 4
    data = json.loads((tmp_path / "r.json").read_text())
    assert set(EMAILS) <= set(data)
    rows = list(openpyxl.load_workbook(tmp_path / "r.xlsx")["Results"].values)
    assert sorted(r[0] for r in rows[1:]) == sorted(EMAILS)
    assert "verification_done" in seen


def test_declined_then_resumed(live_server: LiveServer, api_key: str, contacts: Path) -> None:
    with Client(api_key, live_server.base_url) as client:
        with pytest.raises(sdk.Declined) as declined:
            client.verify_file(contacts, initial_delay=0.05, confirm=lambda _s: False)
        batch_uuid = declined.value.batch_uuid
        assert client.status(batch_uuid).status == "ready_for_verification"
        resumed = client.verify_file(batch_uuid=batch_uuid, initial_delay=0.05)
        assert resumed.status.done
        # Resuming a finished batch just returns it.
        again = client.verify_file(batch_uuid=batch_uuid, initial_delay=0.05)
        assert again.status.stats == resumed.status.stats


def test_rate_limit_is_waited_out(make_server, contacts: Path) -> None:  # type: ignore[no-untyped-def]
    server = make_server(APEXVERIFY_RATE_LIMIT_PER_MINUTE="4")
    key, _ = server.create_account()
    with Client(key, server.base_url, max_rate_limit_wait=0) as impatient:
        for _ in range(4):
            impatient.credits()
        with pytest.raises(sdk.RateLimited) as limited:
            impatient.credits()
        assert limited.value.retry_after >= 1
    # A patient client gets the same 429 + Retry-After, sleeps, and succeeds.
    with Client(key, server.base_url, max_rate_limit_wait=90) as client:
        assert client.credits().email_credit == 1000.0


def test_insufficient_credits_and_typed_errors(live_server: LiveServer, contacts: Path) -> None:
    key, _ = live_server.create_account(sandbox=False, email_credits=1)
    with Client(key, live_server.base_url) as client:
        with pytest.raises(sdk.InsufficientCredits):
            client.verify_file(contacts, initial_delay=0.05, use_global_cache=False)
        with pytest.raises(sdk.NotFound):
            client.status("6f1c1c52-0000-4000-8000-000000000000")
        with pytest.raises(sdk.ValidationError) as invalid:
            client.configure(
                "6f1c1c52-0000-4000-8000-000000000000", type="email", target_country="ZZ"
            )
        assert invalid.value.detail
        bad = contacts.with_name("bad.txt")
        bad.write_bytes(b"\xef\xbb\xbfa@b.com\n")
        with pytest.raises(sdk.ParseError):
            client.upload(bad, name="x", type="email", target_country="US")
    with (
        Client("apx_wrong", live_server.base_url) as anonymous,
        pytest.raises(sdk.AuthenticationError),
    ):
        anonymous.credits()


def test_connection_errors_are_transport_errors() -> None:
    with (
        Client("k", "http://127.0.0.1:9", max_retries=1) as client,
        pytest.raises(sdk.TransportError),
    ):
        client.credits()


async def test_async_client(live_server: LiveServer, api_key: str, contacts: Path) -> None:
    async with AsyncClient(api_key, live_server.base_url) as client:
        upload = await client.upload(contacts, name="async", type="email", target_country="US")
        unit = await client.unit("invalid@example.com", type="email")
        assert unit["wrong"] is True
        page = await client.list_batches(limit=200)
        assert upload.batch_uuid in {b.batch_uuid for b in page.batches}
        credits = await client.credits()
        assert credits.phone_credit == 1000.0
