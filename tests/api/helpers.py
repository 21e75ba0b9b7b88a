"""Small HTTP helpers over a live server for the API tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx


class Api:
    def __init__(self, base_url: str, api_key: str) -> None:
        self.client = httpx.Client(base_url=base_url, headers={"X-API-Key": api_key}, timeout=60)

    def upload(
        self,
        content: bytes | str,
        *,
        type: str = "email",
        country: str = "US",
        name: str = "test batch",
        **fields: str,
    ) -> httpx.Response:
        body = content.encode() if isinstance(content, str) else content
        data = {"name": name, "type": type, "target_country": country, **fields}
        return self.client.post(
            "/v1/batch", files={"file": ("contacts.txt", body, "text/plain")}, data=data
        )

    def new_batch(self, content: str, **kwargs: Any) -> str:
        response = self.upload(content, **kwargs)
        assert response.status_code == 200, response.text
        return str(response.json()["batch_uuid"])

    def status(self, batch_uuid: str) -> dict[str, Any]:
        response = self.client.get(f"/v1/batch/{batch_uuid}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_for(self, batch_uuid: str, *statuses: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            body = self.status(batch_uuid)
            if body["status"] in statuses:
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"batch stuck in {body}")
            time.sleep(0.05)

    def ready(self, content: str, **kwargs: Any) -> str:
        batch_uuid = self.new_batch(content, **kwargs)
        self.wait_for(batch_uuid, "ready_for_verification")
        return batch_uuid

    def run(self, content: str, **kwargs: Any) -> str:
        batch_uuid = self.ready(content, **kwargs)
        launched = self.client.post(f"/v1/batch/{batch_uuid}")
        assert launched.json() == {"status": "ok"}, launched.text
        self.wait_for(batch_uuid, "verification_done")
        return batch_uuid

    def export_json(self, batch_uuid: str, **params: str) -> dict[str, Any]:
        response = self.client.get(
            f"/v1/batch/{batch_uuid}/export", params={"format": "json", **params}
        )
        assert response.status_code == 200, response.text
        return dict(response.json())


T = TypeVar("T")


async def until(
    fetch: Callable[[], Awaitable[T]], done: Callable[[T], Any], seconds: float = 60
) -> T:
    """Poll ``fetch`` until ``done`` holds for its value; fails after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        value = await fetch()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"not reached in {seconds}s: {value}"
        await asyncio.sleep(0.1)
