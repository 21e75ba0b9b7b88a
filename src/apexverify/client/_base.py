"""What both clients share, written once in the sans-IO style httpx uses: each endpoint is
described as a :class:`_Call` (method, path, request arguments, response parser); the base
builds its ``httpx.Request`` and decides, from a response or a connection error, whether to
accept it, wait and retry, or raise. :class:`Client` and :class:`AsyncClient` only send and
sleep.

Retry policy (:meth:`_Base.after_response`, :meth:`_Base.after_error`):
- 429: wait ``Retry-After`` and retry, whatever the method (nothing happened), until
  ``max_rate_limit_wait`` seconds were spent waiting; then :class:`RateLimited`.
- Connection errors and 502/503/504: retried with exponential backoff (``Retry-After`` when
  the server sent one) up to ``max_retries`` times, for idempotent methods only. An upload, a
  launch or a cancel is a POST: its answer may have been lost after it succeeded, so it is
  never sent twice blindly.
- Any other status >= 400: the error of :mod:`._errors` for it, with the server's message.
"""

from __future__ import annotations

import email.utils
import mimetypes
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

import httpx

from ._errors import RateLimited, TransportError, error_for
from ._models import BatchPage, BatchStatus, BatchSummary, Cancellation, Credits, Upload
from ._params import (
    TARGETING_NAMES,
    check_column,
    check_country,
    check_description,
    check_format,
    check_header,
    check_keep,
    check_name,
    check_params,
    check_record_type,
    form_value,
)
from ._results import Result, parse_result

DEFAULT_URL = "http://127.0.0.1:8000"
_IDEMPOTENT = frozenset({"GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_RETRY_STATUSES = frozenset({502, 503, 504})
# Spreadsheet inputs: sent with column=auto unless the caller chose a column.
TABLE_SUFFIXES = frozenset({".csv", ".tsv", ".tab", ".xlsx", ".xlsm", ".xls", ".ods"})

T = TypeVar("T")


@dataclass(frozen=True)
class _Call(Generic[T]):
    """One request and the parser of its response, so both clients know each endpoint's
    result type."""

    method: str
    path: str
    kwargs: dict[str, Any]
    parse: Callable[[httpx.Response], T]


@dataclass
class Attempts:
    """What one call has spent so far: backoff retries and seconds waited on 429s."""

    retries: int = 0
    waited: float = 0.0


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def decode_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"message": response.text[:200]}


class _Base:
    """Configuration, request building, the retry policy, error mapping, endpoints."""

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
        # Set by the subclass; a caller's own http_client keeps its own timeout.
        self._own_timeout = True

    @property
    def _headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}

    # Request building ---------------------------------------------------------------------
    def _build(self, http: httpx.Client | httpx.AsyncClient, call: _Call[Any]) -> httpx.Request:
        """An absolute URL and the key on every request: a caller's ``http_client`` needs no
        base URL or headers of ours."""
        kwargs = dict(call.kwargs)
        headers = {**self._headers, **kwargs.pop("headers", {})}  # a caller's request() headers
        if self._own_timeout:
            kwargs.setdefault("timeout", self.timeout)
        return http.build_request(call.method, self.base_url + call.path, headers=headers, **kwargs)

    # The retry policy, decided once -----------------------------------------------------
    @staticmethod
    def _backoff(attempt: int) -> float:
        # 0.5, 1, 2, 4, then 8 s (a float power would overflow for a huge max_retries)
        return 8.0 if attempt >= 4 else 0.5 * 2.0**attempt

    def after_error(
        self, request: httpx.Request, exc: httpx.TransportError, spent: Attempts
    ) -> float:
        """Seconds to wait before sending ``request`` again, or raise :class:`TransportError`."""
        if request.method not in _IDEMPOTENT or spent.retries >= self.max_retries:
            raise TransportError(str(exc) or type(exc).__name__) from exc
        delay = self._backoff(spent.retries)
        spent.retries += 1
        return delay

    def after_response(
        self, request: httpx.Request, response: httpx.Response, spent: Attempts
    ) -> float | None:
        """None to accept ``response``; seconds to wait before a retry; or raise its error.
        The body of an error response must have been read."""
        status = response.status_code
        if status < 400:
            return None
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        error = error_for(
            status, decode_body(response), 1.0 if retry_after is None else retry_after
        )
        if isinstance(error, RateLimited):
            if spent.waited + error.retry_after > self.max_rate_limit_wait:
                raise error
            spent.waited += error.retry_after
            return error.retry_after
        retriable = status in _RETRY_STATUSES and request.method in _IDEMPOTENT
        if retriable and spent.retries < self.max_retries:
            delay = self._backoff(spent.retries) if retry_after is None else retry_after
            spent.retries += 1
            return delay
        raise error

    # Endpoints: each described once --------------------------------------------------------
    def _ep_upload(self, path: Path, handle: IO[bytes], form: dict[str, str]) -> _Call[Upload]:
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        # A file object: httpx streams it in chunks (and rewinds it for a 429 retry).
        files = {"file": (path.name, handle, mime)}
        return _Call("POST", "/v1/batch", {"data": form, "files": files}, _json(_upload))

    def _upload_form(
        self,
        name: str,
        type: str,
        target_country: str,
        description: str | None,
        column: str | int | None,
        header: bool | str | None,
        params: dict[str, Any],
    ) -> dict[str, str]:
        checked = check_params("upload", params)
        data = {
            "name": check_name(name),
            "type": check_record_type(type),
            "target_country": check_country(target_country),
        }
        data.update({k: form_value(v) for k, v in checked.items()})
        if check_description(description):
            data["description"] = str(description)
        if (text := check_column(column)) is not None:
            data["column"] = text
        if (text := check_header(header)) is not None:
            data["header"] = text
        return data

    def _ep_configure(
        self, batch_uuid: str, type: str, target_country: str, params: dict[str, Any]
    ) -> _Call[None]:
        body = {
            "type": check_record_type(type),
            "target_country": check_country(target_country),
            **check_params("configure", params),
        }
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
        self,
        batch_uuid: str,
        format: str,
        *,
        include_details: bool = True,
        include_statistics: bool = True,
        keep: str | Iterable[str] | None = None,
        merge: bool | None = None,
    ) -> _Call[bytes]:
        params = {
            "format": check_format(format),
            "include_details": form_value(include_details),
            "include_statistics": form_value(include_statistics),
        }
        if (kept := check_keep(keep)) is not None:
            params["keep"] = kept
        if merge is not None:
            params["merge"] = form_value(bool(merge))
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
        return _Call("GET", "/v1/account/credits", {}, _json(Credits.parse))

    def _ep_unit(
        self, value: str, type: str, target_country: str, params: dict[str, Any]
    ) -> _Call[Result]:
        body = {
            "type": check_record_type(type),
            "unit": value,
            "target_country": check_country(target_country),
            **check_params("unit", params, allowed=TARGETING_NAMES),
        }
        return _Call("POST", "/v1/unit", {"json": body}, _json(lambda b: parse_result(b, value)))


def export_format(target: object, format: str | None) -> str:
    """The export format: ``format`` when given, else the target file's extension
    (``.xlsx``, ``.csv``, anything else JSON)."""
    if format is not None:
        return check_format(format)
    suffix = Path(target).suffix.lower() if isinstance(target, str | os.PathLike) else ""
    return {".xlsx": "xlsx", ".csv": "csv"}.get(suffix, "json")


class FileSink:
    """Where an export is written: a path (through ``<name>.part``, renamed once complete,
    so a failed download leaves no truncated file behind) or a caller's binary file object."""

    def __init__(self, target: str | os.PathLike[str] | IO[bytes]) -> None:
        self.written = 0
        self._path: Path | None = None
        self._part: Path | None = None
        if isinstance(target, str | os.PathLike):
            self._path = Path(target)
            self._part = self._path.with_name(self._path.name + ".part")
            self._handle: IO[bytes] = self._part.open("wb")
        else:
            self._handle = target

    def write(self, chunk: bytes) -> None:
        self._handle.write(chunk)
        self.written += len(chunk)

    def close(self, ok: bool) -> None:
        if self._part is None or self._path is None:
            return
        self._handle.close()
        if ok:
            self._part.replace(self._path)
        else:
            self._part.unlink(missing_ok=True)


def _json(parse: Callable[[Any], T]) -> Callable[[httpx.Response], T]:
    def parse_response(response: httpx.Response) -> T:
        return parse(response.json())

    return parse_response


def _content(response: httpx.Response) -> bytes:
    return response.content


def _ignore(_body: Any) -> None:
    return None


def _object(body: Any) -> dict[str, Any]:
    return dict(body)


def _upload(body: dict[str, Any]) -> Upload:
    return Upload(body["batch_uuid"], body["created_at"])


def _page(body: dict[str, Any]) -> BatchPage:
    return BatchPage(
        [BatchSummary.parse(b) for b in body["batches"]],
        body["total"],
        body["offset"],
        body["limit"],
    )
