"""Sync and async clients on one shared base: request building, error mapping and the retry
policy live in :class:`_Base`; the two subclasses only differ in how they wait and send."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ._errors import RateLimited, TransportError, error_for
from ._models import BatchPage, BatchStatus, BatchSummary, Credits, Upload

DEFAULT_URL = "http://127.0.0.1:8000"
# Idempotent methods are retried on connection errors; uploads and launches are not (a lost
# answer may hide a success), but every method honours 429 Retry-After (nothing happened).
_IDEMPOTENT = frozenset({"GET", "PUT", "PATCH", "DELETE", "HEAD"})


class _Base:
    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 4,
        max_rate_limit_wait: float = 120.0,
    ) -> None:
        self.api_key = api_key or os.environ.get("APEXVERIFY_API_KEY", "")
        self.base_url = (base_url or os.environ.get("APEXVERIFY_URL") or DEFAULT_URL).rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_rate_limit_wait = max_rate_limit_wait

    @property
    def _headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}

    @staticmethod
    def _decode(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return {"message": response.text[:200]}

    def _outcome(self, response: httpx.Response) -> tuple[Any, float | None]:
        """(body, None) on success; (error, wait) when the call may be retried after wait."""
        if response.status_code < 400:
            return response, None
        body = self._decode(response)
        retry_after = float(response.headers.get("Retry-After", "1") or 1)
        error = error_for(response.status_code, body, retry_after)
        if isinstance(error, RateLimited):
            return error, retry_after
        raise error

    @staticmethod
    def _backoff(attempt: int) -> float:
        return min(0.5 * 2**attempt, 8.0)

    # Each endpoint is described once: (method, path, request kwargs, parser of the JSON).
    def _ep_configure(
        self, batch_uuid: str, type: str, target_country: str, params: dict[str, Any]
    ) -> _Call:
        body = {"type": type, "target_country": target_country, **params}
        return _Call("PUT", f"/v1/batch/{batch_uuid}", {"json": body}, _ignore)

    def _ep_parse(self, batch_uuid: str) -> _Call:
        return _Call("PATCH", f"/v1/batch/{batch_uuid}", {}, _ignore)

    def _ep_details(self, batch_uuid: str) -> _Call:
        return _Call("GET", f"/v1/batch/{batch_uuid}/details", {}, dict)

    def _ep_launch(self, batch_uuid: str) -> _Call:
        return _Call("POST", f"/v1/batch/{batch_uuid}", {}, lambda b: str(b["status"]))

    def _ep_status(self, batch_uuid: str) -> _Call:
        return _Call("GET", f"/v1/batch/{batch_uuid}", {}, BatchStatus.parse)

    def _ep_export(
        self, batch_uuid: str, format: str, include_details: bool, include_statistics: bool
    ) -> _Call:
        params = {
            "format": format,
            "include_details": str(include_details).lower(),
            "include_statistics": str(include_statistics).lower(),
        }
        return _Call("GET", f"/v1/batch/{batch_uuid}/export", {"params": params}, None)

    def _ep_list(
        self, offset: int, limit: int, created_after: str | None, created_before: str | None
    ) -> _Call:
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if created_after:
            params["created_after"] = created_after
        if created_before:
            params["created_before"] = created_before
        return _Call("GET", "/v1/batch", {"params": params}, _page)

    def _ep_delete(self, batch_uuid: str) -> _Call:
        return _Call("DELETE", f"/v1/batch/{batch_uuid}", {}, _ignore)

    def _ep_credits(self) -> _Call:
        return _Call(
            "GET",
            "/v1/account/credits",
            {},
            lambda b: Credits(float(b["email_credit"]), float(b["phone_credit"])),
        )

    def _ep_unit(self, value: str, type: str, target_country: str, params: dict[str, Any]) -> _Call:
        body = {"type": type, "unit": value, "target_country": target_country, **params}
        return _Call("POST", "/v1/unit", {"json": body}, dict)

    @staticmethod
    def _upload_form(
        name: str, type: str, target_country: str, description: str | None, params: dict[str, Any]
    ) -> dict[str, str]:
        data = {"name": name, "type": type, "target_country": target_country, **_form(params)}
        if description:
            data["description"] = description
        return data


class Client(_Base):
    """Blocking client. Use as a context manager or call :meth:`close`."""

    def __init__(self, api_key: str | None = None, base_url: str | None = None, **kw: Any):
        super().__init__(api_key, base_url, **kw)
        self._http = httpx.Client(
            base_url=self.base_url, headers=self._headers, timeout=self.timeout
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        waited, attempt = 0.0, 0
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if method not in _IDEMPOTENT or attempt >= self.max_retries:
                    raise TransportError(str(exc)) from exc
                time.sleep(self._backoff(attempt))
                attempt += 1
                continue
            result, wait = self._outcome(response)
            if wait is None:
                return result  # type: ignore[no-any-return]
            if waited + wait > self.max_rate_limit_wait:
                raise result
            time.sleep(wait)
            waited += wait

    def _call(self, call: _Call) -> Any:
        response = self.request(call.method, call.path, **call.kwargs)
        return response.content if call.parse is None else call.parse(response.json())

    # Endpoints ---------------------------------------------------------------------------
    def upload(
        self,
        path: str | Path,
        *,
        name: str,
        type: str,
        target_country: str,
        description: str | None = None,
        **params: Any,
    ) -> Upload:
        data = self._upload_form(name, type, target_country, description, params)
        with Path(path).open("rb") as handle:
            body = self.request(
                "POST",
                "/v1/batch",
                data=data,
                files={"file": (Path(path).name, handle, "text/plain")},
            ).json()
        return Upload(body["batch_uuid"], body["created_at"])

    def configure(self, batch_uuid: str, *, type: str, target_country: str, **params: Any) -> None:
        self._call(self._ep_configure(batch_uuid, type, target_country, params))

    def parse(self, batch_uuid: str) -> None:
        self._call(self._ep_parse(batch_uuid))

    def details(self, batch_uuid: str) -> dict[str, Any]:
        return self._call(self._ep_details(batch_uuid))  # type: ignore[no-any-return]

    def launch(self, batch_uuid: str) -> str:
        return self._call(self._ep_launch(batch_uuid))  # type: ignore[no-any-return]

    def status(self, batch_uuid: str) -> BatchStatus:
        return self._call(self._ep_status(batch_uuid))  # type: ignore[no-any-return]

    def export(
        self,
        batch_uuid: str,
        format: str = "json",
        *,
        include_details: bool = True,
        include_statistics: bool = True,
    ) -> bytes:
        call = self._ep_export(batch_uuid, format, include_details, include_statistics)
        return self._call(call)  # type: ignore[no-any-return]

    def list_batches(
        self,
        *,
        offset: int = 0,
        limit: int = 50,
        created_after: str | None = None,
        created_before: str | None = None,
    ) -> BatchPage:
        call = self._ep_list(offset, limit, created_after, created_before)
        return self._call(call)  # type: ignore[no-any-return]

    def delete(self, batch_uuid: str) -> None:
        self._call(self._ep_delete(batch_uuid))

    def credits(self) -> Credits:
        return self._call(self._ep_credits())  # type: ignore[no-any-return]

    def unit(
        self, value: str, *, type: str, target_country: str = "US", **params: Any
    ) -> dict[str, Any]:
        call = self._ep_unit(value, type, target_country, params)
        return self._call(call)  # type: ignore[no-any-return]

    def verify_file(self, path: str | Path | None = None, **kwargs: Any) -> Any:
        """Upload, configure, parse, confirm the cost, launch, poll, export: see
        :func:`apexverify.client.workflow.verify_file`."""
        from ._workflow import verify_file

        return verify_file(self, path, **kwargs)


class AsyncClient(_Base):
    """Asyncio client with the same endpoints (``await client.status(uuid)``)."""

    def __init__(self, api_key: str | None = None, base_url: str | None = None, **kw: Any):
        super().__init__(api_key, base_url, **kw)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=self._headers, timeout=self.timeout
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        waited, attempt = 0.0, 0
        while True:
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if method not in _IDEMPOTENT or attempt >= self.max_retries:
                    raise TransportError(str(exc)) from exc
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1
                continue
            result, wait = self._outcome(response)
            if wait is None:
                return result  # type: ignore[no-any-return]
            if waited + wait > self.max_rate_limit_wait:
                raise result
            await asyncio.sleep(wait)
            waited += wait

    async def _call(self, call: _Call) -> Any:
        response = await self.request(call.method, call.path, **call.kwargs)
        return response.content if call.parse is None else call.parse(response.json())

    async def upload(
        self,
        path: str | Path,
        *,
        name: str,
        type: str,
        target_country: str,
        description: str | None = None,
        **params: Any,
    ) -> Upload:
        data = self._upload_form(name, type, target_country, description, params)
        content = await asyncio.to_thread(Path(path).read_bytes)
        response = await self.request(
            "POST", "/v1/batch", data=data, files={"file": (Path(path).name, content, "text/plain")}
        )
        body = response.json()
        return Upload(body["batch_uuid"], body["created_at"])

    async def configure(
        self, batch_uuid: str, *, type: str, target_country: str, **params: Any
    ) -> None:
        await self._call(self._ep_configure(batch_uuid, type, target_country, params))

    async def parse(self, batch_uuid: str) -> None:
        await self._call(self._ep_parse(batch_uuid))

    async def details(self, batch_uuid: str) -> dict[str, Any]:
        return await self._call(self._ep_details(batch_uuid))  # type: ignore[no-any-return]

    async def launch(self, batch_uuid: str) -> str:
        return await self._call(self._ep_launch(batch_uuid))  # type: ignore[no-any-return]

    async def status(self, batch_uuid: str) -> BatchStatus:
        return await self._call(self._ep_status(batch_uuid))  # type: ignore[no-any-return]

    async def export(
        self,
        batch_uuid: str,
        format: str = "json",
        *,
        include_details: bool = True,
        include_statistics: bool = True,
    ) -> bytes:
        call = self._ep_export(batch_uuid, format, include_details, include_statistics)
        return await self._call(call)  # type: ignore[no-any-return]

    async def list_batches(
        self,
        *,
        offset: int = 0,
        limit: int = 50,
        created_after: str | None = None,
        created_before: str | None = None,
    ) -> BatchPage:
        call = self._ep_list(offset, limit, created_after, created_before)
        return await self._call(call)  # type: ignore[no-any-return]

    async def delete(self, batch_uuid: str) -> None:
        await self._call(self._ep_delete(batch_uuid))

    async def credits(self) -> Credits:
        return await self._call(self._ep_credits())  # type: ignore[no-any-return]

    async def unit(
        self, value: str, *, type: str, target_country: str = "US", **params: Any
    ) -> dict[str, Any]:
        call = self._ep_unit(value, type, target_country, params)
        return await self._call(call)  # type: ignore[no-any-return]


def _form(params: Mapping[str, Any]) -> dict[str, str]:
    return {
        k: str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in params.items()
        if v is not None
    }


def _ignore(_body: Any) -> None:
    return None


def _page(body: dict[str, Any]) -> BatchPage:
    return BatchPage(
        [BatchSummary.parse(b) for b in body["batches"]],
        body["total"],
        body["offset"],
        body["limit"],
    )


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    kwargs: dict[str, Any]
    parse: Callable[[Any], Any] | None  # None: the raw bytes (exports)
