"""The fast tier: services built by the composition root on a fresh SQLite database per test,
with a recording queue and a fake engine factory, and the real app served in-process over
httpx's ASGI transport. No process, no port, no network."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from apexverify.accounts import service as accounts
from apexverify.app import create_app
from apexverify.batches import tasks
from apexverify.batches.context import Services
from apexverify.batches.retry import RetryPolicy
from apexverify.composition import build_services, prepare_database
from apexverify.settings import Settings
from apexverify.store.models import Account, CreditMovement
from tests.support.fakes import FakeEngines, RecordingQueue

# Retries at once: the fast tier drives retries through the queue, not the clock.
FAST_RETRY = RetryPolicy(max_attempts=3, base_seconds=0.0, cap_seconds=0.0)


@dataclass
class Lab:
    services: Services
    queue: RecordingQueue
    engines: FakeEngines
    client: httpx.AsyncClient

    def account(
        self, *, sandbox: bool = False, email: float = 100, phone: float = 100
    ) -> tuple[str, str]:
        """A new account: ``(account_id, api_key)``."""
        with self.services.store.write() as session:
            account, key = accounts.create_account(
                session, "t", sandbox=sandbox, email_credits=email, phone_credits=phone
            )
        return account.id, key.api_key

    def balance(self, account_id: str, kind: str = "email") -> float:
        with self.services.store.read() as session:
            return accounts.balances(accounts.get_account(session, account_id))[f"{kind}_credit"]

    def ledger_sum(self, account_id: str, kind: str = "email") -> float:
        with self.services.store.read() as session:
            rows = session.query(CreditMovement).filter_by(account_id=account_id, credit_type=kind)
            return sum(row.amount_milli for row in rows) / 1000

    async def upload(self, key: str, content: str, **fields: str) -> str:
        data = {"name": "t", "type": "email", "target_country": "US", **fields}
        response = await self.client.post(
            "/v1/batch",
            headers={"X-Api-Key": key},
            data=data,
            files={"file": ("list.txt", content.encode(), "text/plain")},
        )
        assert response.status_code == 200, response.text
        await self.queue.run_all()
        return str(response.json()["batch_uuid"])

    async def get(self, key: str, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(path, headers={"X-Api-Key": key}, params=params)

    async def post(self, key: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.post(path, headers={"X-Api-Key": key}, **kwargs)


@asynccontextmanager
async def open_lab(
    tmp_path: Path,
    engines: FakeEngines | None = None,
    retry: RetryPolicy = FAST_RETRY,
    **settings: Any,
) -> AsyncIterator[Lab]:
    config = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        data_dir=tmp_path / "var",
        parse_workers=1,
        **settings,
    )
    queue = RecordingQueue()
    engines = engines or FakeEngines()
    services = build_services(config, engines=engines, queue=queue, retry=retry)
    prepare_database(services)
    tasks.register(services)
    transport = httpx.ASGITransport(app=create_app(services=services), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://apexverify.test") as client:
        yield Lab(services, queue, engines, client)
    services.store.dispose()


def account_row(services: Services, account_id: str) -> Account:
    with services.store.read() as session:
        return accounts.get_account(session, account_id)
