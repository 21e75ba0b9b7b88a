"""Sync and async clients on one shared base: request building, error mapping and the retry
policy live in :class:`_Base`; the two subclasses only differ in how they wait and send."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar, Unpack

import httpx

from ._errors import RateLimited, TransportError, error_for
from ._models import BatchPage, BatchStatus, BatchSummary, Cancellation, Credits, Upload

if TYPE_CHECKING:
    from ._workflow import VerifyResult

DEFAULT_URL = "http://127.0.0.1:8000"
# Idempotent methods are retried on connection errors; uploads and launches are not (a lost
# answer may hide a success), but every method honours 429 Retry-After (nothing happened).
_IDEMPOTENT = frozenset({"GET", "PUT", "PATCH", "DELETE", "HEAD"})

T = TypeVar("T")


class _ClientOptions(TypedDict, total=False):
    """The keyword options both clients accept (see :class:`_Base` for the defaults)."""

    timeout: float
    max_retries: int
    max_rate_limit_wait: float


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

    def _outcome(self, response: httpx.Response) -> RateLimited | None:
        """None on success; the 429 error when the call may be retried after its
        ``retry_after``; any other error is raised."""
        if response.status_code < 400:
            return None
        body = self._decode(response)
        retry_after = float(response.headers.get("Retry-After", "1") or 1)
        error = error_for(response.status_code, body, retry_after)
        if isinstance(error, RateLimited):
            return error
        raise error

    @staticmethod
    def _backoff(attempt: int) -> float:
        # 0.5, 1, 2, 4, then 8 s (a float power would overflow for a huge max_retries)
        return 8.0 if attempt >= 4 else 0.5 * 2.0**attempt

    # Each endpoint is described once: (method, path, request kwargs, response parser).
    def _ep_configure(
        self, batch_uuid: str, type: str, target_country: str, params: dict[str, Any]
    ) -> _Call[None]:
        body = {"type": type, "target_country": target_country, **params}
        return _Call("PUT", f"/v1/batch/{batch_uuid}", {"json": body}, _json(_ignore))

    def _ep_parse(self, batch_uuid: str) -> _Call[None]:
        return _Call("PATCH", f"/v1/batch/{batch_uuid}", {}, _json(_ignore))

    def _ep_details(self, batch_uuid: str) -> _Call[dict[str, Any]]:
        return _Call("GET", f"/v1/batch/{batch_uuid}/details", {}, _json(_object))

    def _ep_launch(self, batch_uuid: str) -> _Call[str]:
        return _Call("POST", f"/v1/batch/{batch_uuid}", {}, _json(lambda b: str(b["status"])))

    def _ep_status(self, batch_uuid: str) -> _Call[BatchStatus]:
        return _Call("GET", f"/v1/batch/{batch_uuid}", {}, _json(BatchStatus.parse))

    def _ep_cancel(self, batch_uuid: str) -> _Call[Cancellation]:
        return _Call("POST", f"/v1/batch/{batch_uuid}/cancel", {}, _json(Cancellation.parse))

    def _ep_export(
        self, batch_uuid: str, format: str, include_details: bool, include_statistics: bool
    ) -> _Call[bytes]:
        params = {
            "format": format,
            "include_details": str(include_details).lower(),
            "include_statistics": str(include_statistics).lower(),
        }
        return _Call("GET", f"/v1/batch/{batch_uuid}/export", {"params": params}, _content)

    def _ep_list(
        self, offset: int, limit: int, created_after: str | None, created_before: str | None
    ) -> _Call[BatchPage]:
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if created_after:
            params["created_after"] = created_after
        if created_before:
            params["created_before"] = created_before
        return _Call("GET", "/v1/batch", {"params": params}, _json(_page))

    def _ep_delete(self, batch_uuid: str) -> _Call[None]:
        return _Call("DELETE", f"/v1/batch/{batch_uuid}", {}, _json(_ignore))

    def _ep_credits(self) -> _Call[Credits]:
        return _Call("GET", "/v1/account/credits", {}, _json(_credits))

    def _ep_unit(
        self, value: str, type: str, target_country: str, params: dict[str, Any]
    ) -> _Call[dict[str, Any]]:
        body = {"type": type, "unit": value, "target_country": target_country, **params}
        return _Call("POST", "/v1/unit", {"json": body}, _json(_object))

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

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        **options: Unpack[_ClientOptions],
    ) -> None:
        super().__init__(api_key, base_url, **options)
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
            limited = self._outcome(response)
            if limited is None:
                return response
            wait = limited.retry_after
            if waited + wait > self.max_rate_limit_wait:
                raise limited
            time.sleep(wait)
            waited += wait

    def _call(self, call: _Call[T]) -> T:
        return call.parse(self.request(call.method, call.path, **call.kwargs))

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
        return self._call(self._ep_details(batch_uuid))

    def launch(self, batch_uuid: str) -> str:
        return self._call(self._ep_launch(batch_uuid))

    def status(self, batch_uuid: str) -> BatchStatus:
        return self._call(self._ep_status(batch_uuid))

    def cancel(self, batch_uuid: str) -> Cancellation:
        """Stop a running batch (an ApexVerify extension): it ends ``verification_done``, the
        records not verified yet end ``unknown`` and are refunded. :class:`APIError` with
        ``status_code`` 409 when it is not running (the message says why)."""
        return self._call(self._ep_cancel(batch_uuid))

    def export(
        self,
        batch_uuid: str,
        format: str = "json",
        *,
        include_details: bool = True,
        include_statistics: bool = True,
    ) -> bytes:
        call = self._ep_export(batch_uuid, format, include_details, include_statistics)
        return self._call(call)

    def list_batches(
        self,
        *,
        offset: int = 0,
        limit: int = 50,
        created_after: str | None = None,
        created_before: str | None = None,
    ) -> BatchPage:
        call = self._ep_list(offset, limit, created_after, created_before)
        return self._call(call)

    def delete(self, batch_uuid: str) -> None:
        self._call(self._ep_delete(batch_uuid))

    def credits(self) -> Credits:
        return self._call(self._ep_credits())

    def unit(
        self, value: str, *, type: str, target_country: str = "US", **params: Any
    ) -> dict[str, Any]:
        call = self._ep_unit(value, type, target_country, params)
        return self._call(call)

    def verify_file(self, path: str | Path | None = None, **kwargs: Any) -> VerifyResult:
        """Upload, configure, parse, confirm the cost, launch, poll, export: see
        :func:`apexverify.client.verify_file`."""
        from ._workflow import verify_file

        return verify_file(self, path, **kwargs)


class AsyncClient(_Base):
    """Asyncio client with the same endpoints (``await client.status(uuid)``)."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        **options: Unpack[_ClientOptions],
    ) -> None:
        super().__init__(api_key, base_url, **options)
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
            limited = self._outcome(response)
            if limited is None:
                return response
            wait = limited.retry_after
            if waited + wait > self.max_rate_limit_wait:
                raise limited
            await asyncio.sleep(wait)
            waited += wait

    async def _call(self, call: _Call[T]) -> T:
        return call.parse(await self.request(call.method, call.path, **call.kwargs))

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
        return await self._call(self._ep_details(batch_uuid))

    async def launch(self, batch_uuid: str) -> str:
        return await self._call(self._ep_launch(batch_uuid))

    async def status(self, batch_uuid: str) -> BatchStatus:
        return await self._call(self._ep_status(batch_uuid))

    async def cancel(self, batch_uuid: str) -> Cancellation:
        """See :meth:`Client.cancel`."""
        return await self._call(self._ep_cancel(batch_uuid))

    async def export(
        self,
        batch_uuid: str,
        format: str = "json",
        *,
        include_details: bool = True,
        include_statistics: bool = True,
    ) -> bytes:
        call = self._ep_export(batch_uuid, format, include_details, include_statistics)
        return await self._call(call)

    async def list_batches(
        self,
        *,
        offset: int = 0,
        limit: int = 50,
        created_after: str | None = None,
        created_before: str | None = None,
    ) -> BatchPage:
        call = self._ep_list(offset, limit, created_after, created_before)
        return await self._call(call)

    async def delete(self, batch_uuid: str) -> None:
        await self._call(self._ep_delete(batch_uuid))

    async def credits(self) -> Credits:
        return await self._call(self._ep_credits())

    async def unit(
        self, value: str, *, type: str, target_country: str = "US", **params: Any
    ) -> dict[str, Any]:
        call = self._ep_unit(value, type, target_country, params)
        return await self._call(call)


def _form(params: Mapping[str, Any]) -> dict[str, str]:
    return {
        k: str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in params.items()
        if v is not None
    }


def _json(parse: Callable[[Any], T]) -> Callable[[httpx.Response], T]:
    """A response parser that applies ``parse`` to the decoded JSON body."""

    def parse_response(response: httpx.Response) -> T:
        return parse(response.json())

    return parse_response


def _content(response: httpx.Response) -> bytes:
    return response.content


def _ignore(_body: Any) -> None:
    return None


def _object(body: Any) -> dict[str, Any]:
    return dict(body)


def _credits(body: dict[str, Any]) -> Credits:
    return Credits(float(body["email_credit"]), float(body["phone_credit"]))


def _page(body: dict[str, Any]) -> BatchPage:
    return BatchPage(
        [BatchSummary.parse(b) for b in body["batches"]],
        body["total"],
        body["offset"],
        body["limit"],
    )


@dataclass(frozen=True)
class _Call(Generic[T]):
    """One request and the parser of its response (JSON for most endpoints, the raw bytes
    for exports), so each endpoint's result type is known to both clients."""

    method: str
    path: str
    kwargs: dict[str, Any]
    parse: Callable[[httpx.Response], T]
