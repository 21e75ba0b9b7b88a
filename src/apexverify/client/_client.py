"""The two clients over one base (:mod:`._base`): they differ only in how they send a
request and wait, never in what they send or how they read the answer."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar, Unpack

import httpx

from ._base import Attempts, FileSink, _Base, _Call, export_format
from ._jsonstream import ObjectStream
from ._models import BatchPage, BatchStatus, Cancellation, Credits, Upload
from ._params import BatchParams, TargetingParams
from ._results import Result, parse_result
from ._workflow import Do, Sleep, VerifyResult, plan

T = TypeVar("T")
ExportTarget = str | os.PathLike[str] | IO[bytes]


class Client(_Base):
    """Blocking client. Use as a context manager or call :meth:`close`.

    ``transport=`` (e.g. ``httpx.MockTransport``) or ``http_client=`` (your own
    ``httpx.Client``, which the SDK then does not close) replace the default connection."""

    # How the client waits (retries, polling); a test may replace it to record the waits.
    _sleep = staticmethod(time.sleep)

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 4,
        max_rate_limit_wait: float = 120.0,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(
            api_key,
            base_url,
            timeout=timeout,
            max_retries=max_retries,
            max_rate_limit_wait=max_rate_limit_wait,
        )
        self._owns_http = http_client is None
        self._own_timeout = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    # Sending: the base decides, this loop only sends and sleeps -------------------------
    def _send(self, call: _Call[Any], *, stream: bool = False) -> httpx.Response:
        spent = Attempts()
        while True:
            request = self._build(self._http, call)
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                self._sleep(self.after_error(request, exc, spent))
                continue
            if stream and response.status_code >= 400:
                response.read()
                response.close()
            delay = self.after_response(request, response, spent)
            if delay is None:
                return response
            if stream:
                response.close()
            self._sleep(delay)

    def _call(self, call: _Call[T]) -> T:
        return call.parse(self._send(call))

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Any endpoint (``path`` from the base URL), with the retry policy and error
        mapping of the named methods."""
        return self._send(_Call(method, path, kwargs, lambda r: r))

    # Endpoints ---------------------------------------------------------------------------
    def upload(
        self,
        path: str | Path,
        *,
        name: str,
        type: str,
        target_country: str,
        description: str | None = None,
        column: str | int | None = None,
        header: bool | str | None = None,
        **params: Unpack[BatchParams],
    ) -> Upload:
        """``POST /v1/batch``: streams the file (it is never read whole into memory). The
        server parses it at once with ``params``. ``column`` / ``header`` are our extension
        for spreadsheets (CSV, TSV, XLSX, ODS): ``column="auto"``, a header name, or a
        1-based number; without ``column`` the upload is the hosted API's (one value per
        line)."""
        form = self._upload_form(
            name, type, target_country, description, column, header, dict(params)
        )
        with Path(path).open("rb") as handle:
            return self._call(self._ep_upload(Path(path), handle, form))

    def configure(
        self, batch_uuid: str, *, type: str, target_country: str, **params: Unpack[BatchParams]
    ) -> None:
        self._call(self._ep_configure(batch_uuid, type, target_country, dict(params)))

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
        keep: str | Iterable[str] | None = None,
        merge: bool | None = None,
    ) -> bytes:
        """The whole export **in memory**; prefer :meth:`export_to` or
        :meth:`iter_results` for big batches."""
        call = self._ep_export(
            batch_uuid,
            format,
            include_details=include_details,
            include_statistics=include_statistics,
            keep=keep,
            merge=merge,
        )
        return self._call(call)

    def export_to(
        self,
        batch_uuid: str,
        target: ExportTarget,
        *,
        format: str | None = None,
        keep: str | Iterable[str] | None = None,
        merge: bool | None = None,
        include_details: bool = True,
        include_statistics: bool = True,
    ) -> int:
        """Stream the export to ``target`` (a path, or a binary file object) in constant
        memory; returns the bytes written. ``format`` defaults to the path's extension."""
        call = self._ep_export(
            batch_uuid,
            export_format(target, format),
            include_details=include_details,
            include_statistics=include_statistics,
            keep=keep,
            merge=merge,
        )
        response = self._send(call, stream=True)
        sink, ok = FileSink(target), False
        try:
            for chunk in response.iter_bytes():
                sink.write(chunk)
            ok = True
        finally:
            response.close()
            sink.close(ok)
        return sink.written

    def iter_results(
        self, batch_uuid: str, *, keep: str | Iterable[str] | None = None
    ) -> Iterator[Result]:
        """Each result row (:class:`EmailResult` / :class:`PhoneResult`) of the JSON export,
        read as it streams in: memory holds one row at a time, whatever the batch's size."""
        call = self._ep_export(batch_uuid, "json", include_statistics=False, keep=keep)
        response = self._send(call, stream=True)
        parser = ObjectStream()
        try:
            for chunk in response.iter_bytes():
                for key, value in parser.feed(chunk):
                    if _is_record(key):
                        yield parse_result(value, key)
            for key, value in parser.feed(b"", final=True):
                if _is_record(key):
                    yield parse_result(value, key)
        finally:
            response.close()

    def list_batches(
        self,
        *,
        offset: int = 0,
        limit: int = 50,
        created_after: str | None = None,
        created_before: str | None = None,
    ) -> BatchPage:
        return self._call(self._ep_list(offset, limit, created_after, created_before))

    def delete(self, batch_uuid: str) -> None:
        self._call(self._ep_delete(batch_uuid))

    def credits(self) -> Credits:
        return self._call(self._ep_credits())

    def unit(
        self,
        value: str,
        *,
        type: str,
        target_country: str = "US",
        **params: Unpack[TargetingParams],
    ) -> Result:
        """``POST /v1/unit``: one value verified now, as a typed result row."""
        return self._call(self._ep_unit(value, type, target_country, dict(params)))

    def verify_file(self, path: str | Path | None = None, **kwargs: Any) -> VerifyResult:
        """Upload (with the parameters: one parse), confirm the cost, launch, poll, write the
        outputs. See docs/client.md for the keyword arguments."""
        steps = plan(path, **kwargs)
        answer: Any = None
        while True:
            try:
                step = steps.send(answer)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            if isinstance(step, Sleep):
                self._sleep(step.seconds)
                answer = None
            else:
                answer = self._do(step)

    def _do(self, step: Do) -> Any:
        return getattr(self, step.method)(*step.args, **step.kwargs)


class AsyncClient(_Base):
    """Asyncio client with the same methods as coroutines (``await client.status(uuid)``);
    :meth:`iter_results` is an async iterator."""

    _sleep = staticmethod(asyncio.sleep)

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 4,
        max_rate_limit_wait: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            api_key,
            base_url,
            timeout=timeout,
            max_retries=max_retries,
            max_rate_limit_wait=max_rate_limit_wait,
        )
        self._owns_http = http_client is None
        self._own_timeout = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout, transport=transport)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def _send(self, call: _Call[Any], *, stream: bool = False) -> httpx.Response:
        spent = Attempts()
        while True:
            request = self._build(self._http, call)
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                await self._sleep(self.after_error(request, exc, spent))
                continue
            if stream and response.status_code >= 400:
                await response.aread()
                await response.aclose()
            delay = self.after_response(request, response, spent)
            if delay is None:
                return response
            if stream:
                await response.aclose()
            await self._sleep(delay)

    async def _call(self, call: _Call[T]) -> T:
        return call.parse(await self._send(call))

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self._send(_Call(method, path, kwargs, lambda r: r))

    async def upload(
        self,
        path: str | Path,
        *,
        name: str,
        type: str,
        target_country: str,
        description: str | None = None,
        column: str | int | None = None,
        header: bool | str | None = None,
        **params: Unpack[BatchParams],
    ) -> Upload:
        """See :meth:`Client.upload`. The file is streamed in 64 KiB reads as it is sent
        (httpx reads a file object chunk by chunk in the async client too)."""
        form = self._upload_form(
            name, type, target_country, description, column, header, dict(params)
        )
        handle = await asyncio.to_thread(Path(path).open, "rb")
        try:
            return await self._call(self._ep_upload(Path(path), handle, form))
        finally:
            handle.close()

    async def configure(
        self, batch_uuid: str, *, type: str, target_country: str, **params: Unpack[BatchParams]
    ) -> None:
        await self._call(self._ep_configure(batch_uuid, type, target_country, dict(params)))

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
        keep: str | Iterable[str] | None = None,
        merge: bool | None = None,
    ) -> bytes:
        """See :meth:`Client.export` (in memory)."""
        call = self._ep_export(
            batch_uuid,
            format,
            include_details=include_details,
            include_statistics=include_statistics,
            keep=keep,
            merge=merge,
        )
        return await self._call(call)

    async def export_to(
        self,
        batch_uuid: str,
        target: ExportTarget,
        *,
        format: str | None = None,
        keep: str | Iterable[str] | None = None,
        merge: bool | None = None,
        include_details: bool = True,
        include_statistics: bool = True,
    ) -> int:
        """See :meth:`Client.export_to`. Chunks are written to the local file as they come
        (a 64 KiB write to the page cache does not hold the event loop noticeably)."""
        call = self._ep_export(
            batch_uuid,
            export_format(target, format),
            include_details=include_details,
            include_statistics=include_statistics,
            keep=keep,
            merge=merge,
        )
        response = await self._send(call, stream=True)
        sink, ok = FileSink(target), False
        try:
            async for chunk in response.aiter_bytes():
                sink.write(chunk)
            ok = True
        finally:
            await response.aclose()
            sink.close(ok)
        return sink.written

    async def iter_results(
        self, batch_uuid: str, *, keep: str | Iterable[str] | None = None
    ) -> AsyncIterator[Result]:
        """See :meth:`Client.iter_results` (``async for row in client.iter_results(uuid)``)."""
        call = self._ep_export(batch_uuid, "json", include_statistics=False, keep=keep)
        response = await self._send(call, stream=True)
        parser = ObjectStream()
        try:
            async for chunk in response.aiter_bytes():
                for key, value in parser.feed(chunk):
                    if _is_record(key):
                        yield parse_result(value, key)
            for key, value in parser.feed(b"", final=True):
                if _is_record(key):
                    yield parse_result(value, key)
        finally:
            await response.aclose()

    async def list_batches(
        self,
        *,
        offset: int = 0,
        limit: int = 50,
        created_after: str | None = None,
        created_before: str | None = None,
    ) -> BatchPage:
        return await self._call(self._ep_list(offset, limit, created_after, created_before))

    async def delete(self, batch_uuid: str) -> None:
        await self._call(self._ep_delete(batch_uuid))

    async def credits(self) -> Credits:
        return await self._call(self._ep_credits())

    async def unit(
        self,
        value: str,
        *,
        type: str,
        target_country: str = "US",
        **params: Unpack[TargetingParams],
    ) -> Result:
        return await self._call(self._ep_unit(value, type, target_country, dict(params)))

    async def verify_file(self, path: str | Path | None = None, **kwargs: Any) -> VerifyResult:
        """See :meth:`Client.verify_file`: the same steps (one plan for both clients), awaited.
        ``confirm`` and ``on_progress`` are plain callables here too."""
        steps = plan(path, **kwargs)
        answer: Any = None
        while True:
            try:
                step = steps.send(answer)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            if isinstance(step, Sleep):
                await self._sleep(step.seconds)
                answer = None
            else:
                answer = await getattr(self, step.method)(*step.args, **step.kwargs)


def _is_record(key: str) -> bool:
    # ``_statistics`` (docs/export.md) cannot collide with a record: no email or phone
    # number starts with "_"; skipped even if a server sends it unasked.
    return not key.startswith("_")


__all__ = ["AsyncClient", "Client"]
