"""The whole workflow in one call, resumable from any step given a batch UUID.

Written once for both clients: :func:`plan` is a generator that yields what to do next (a
client method to call, or a pause) and receives each call's result; ``Client.verify_file``
runs it with blocking calls, ``AsyncClient.verify_file`` awaits them. The file is parsed
once: its parameters travel with the upload (the server parses it at once with them), so
there is no PUT and no PATCH; a PATCH is sent only to retry a batch whose parse ended in
``internal_error`` (the documented retry).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._base import TABLE_SUFFIXES, export_format
from ._errors import ApexVerifyError, BatchFailed
from ._models import BatchStatus
from ._params import (
    check_column,
    check_country,
    check_header,
    check_keep,
    check_params,
    check_record_type,
)
from ._results import Stats

if TYPE_CHECKING:
    from ._client import Client

ProgressCallback = Callable[[BatchStatus], None]
ConfirmCallback = Callable[[BatchStatus], bool]


class Declined(ApexVerifyError):
    """The cost confirmation said no; the batch stays ready_for_verification."""

    def __init__(self, batch_uuid: str) -> None:
        super().__init__(f"launch of {batch_uuid} declined")
        self.batch_uuid = batch_uuid


@dataclass
class VerifyResult:
    batch_uuid: str
    status: BatchStatus
    outputs: list[Path] = field(default_factory=list)

    @property
    def stats(self) -> Stats | None:
        return self.status.stats


@dataclass(frozen=True)
class Do:
    """Call ``client.<method>(*args, **kwargs)`` and send its result back."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sleep:
    seconds: float


Plan = Generator[Do | Sleep, Any, VerifyResult]


def poll_delays(initial: float, cap: float = 60.0) -> Iterator[float]:
    """The guide's advice: start small, double each cycle, cap at 60 s."""
    delay = initial
    while True:
        yield delay
        delay = min(delay * 2, cap)


@dataclass(frozen=True)
class _Output:
    path: Path
    format: str
    merge: bool | None


def plan(
    path: str | Path | None = None,
    *,
    type: str = "email",
    target_country: str = "US",
    name: str | None = None,
    description: str | None = None,
    batch_uuid: str | None = None,
    column: str | int | None = None,
    header: bool | str | None = None,
    output: str | Path | None = None,
    outputs: Iterable[str | Path] | None = None,
    keep: str | Iterable[str] | None = None,
    merge: bool | None = None,
    confirm: ConfirmCallback | None = None,
    on_progress: ProgressCallback | None = None,
    initial_delay: float = 5.0,
    max_delay: float = 60.0,
    **params: Any,
) -> Plan:
    """Check every argument (nothing is sent before), then return the steps."""
    if batch_uuid is None and path is None:
        raise ValueError("give a file to upload or a batch_uuid to resume")
    checked = check_params("verify_file", params)
    check_record_type(type)
    check_country(target_country)
    check_header(header)
    kept = check_keep(keep)
    # A spreadsheet (by extension, or because a column was chosen) is uploaded with the
    # column extension, and its results are merged back into its rows in CSV/XLSX outputs.
    table = column is not None or (path is not None and Path(path).suffix.lower() in TABLE_SUFFIXES)
    if table and column is None:
        column = "auto"
    check_column(column)
    targets = [*(outputs or []), *([output] if output is not None else [])]
    wanted: list[_Output] = []
    for target in targets:
        if Path(target).suffix.lower() not in (".json", ".xlsx", ".csv"):
            raise ValueError(f"output {target}: the extension must be .csv, .xlsx or .json")
        fmt = export_format(target, None)
        merged = merge if merge is not None else (True if table and fmt != "json" else None)
        wanted.append(_Output(Path(target), fmt, merged))
    upload = None
    if batch_uuid is None:
        assert path is not None
        upload = dict(
            name=name or Path(path).name,
            type=type,
            target_country=target_country,
            description=description,
            column=column,
            header=header,
            **checked,
        )
    return _steps(
        Path(path) if path is not None else None,
        upload,
        batch_uuid,
        wanted,
        kept,
        confirm,
        on_progress,
        initial_delay,
        max_delay,
    )


def _steps(
    path: Path | None,
    upload: dict[str, Any] | None,
    batch_uuid: str | None,
    outputs: list[_Output],
    keep: str | None,
    confirm: ConfirmCallback | None,
    on_progress: ProgressCallback | None,
    initial_delay: float,
    max_delay: float,
) -> Plan:
    if upload is not None:
        created = yield Do("upload", (path,), upload)
        batch_uuid = created.batch_uuid
    assert batch_uuid is not None
    status: BatchStatus = yield Do("status", (batch_uuid,))
    if status.status == "internal_error":
        yield Do("parse", (batch_uuid,))  # a re-parse is the documented retry
        status = yield Do("status", (batch_uuid,))
    if status.status == "parsing_content":
        status = yield from _wait(
            batch_uuid, "ready_for_verification", initial_delay, max_delay, on_progress
        )
    elif status.status == "internal_error":
        raise BatchFailed(f"batch {batch_uuid}: {status.message or 'internal_error'}")
    if status.status == "ready_for_verification":
        if on_progress:
            on_progress(status)
        if confirm is not None and not confirm(status):
            raise Declined(batch_uuid)
        yield Do("launch", (batch_uuid,))
    status = yield from _wait(
        batch_uuid, "verification_done", initial_delay, max_delay, on_progress
    )
    result = VerifyResult(batch_uuid, status)
    for out in outputs:
        yield Do(
            "export_to",
            (batch_uuid, out.path),
            {"format": out.format, "keep": keep, "merge": out.merge},
        )
        result.outputs.append(out.path)
    return result


def _wait(
    batch_uuid: str,
    wanted: str,
    initial_delay: float,
    max_delay: float,
    on_progress: ProgressCallback | None,
) -> Generator[Do | Sleep, Any, BatchStatus]:
    delays = poll_delays(initial_delay, max_delay)
    while True:
        status: BatchStatus = yield Do("status", (batch_uuid,))
        if status.status == "internal_error":
            raise BatchFailed(f"batch {batch_uuid}: {status.message or 'internal_error'}")
        if status.status == wanted:
            if on_progress and wanted == "verification_done":
                on_progress(status)  # verified == to_verify == the total
            return status
        if on_progress:
            on_progress(status)
        yield Sleep(next(delays))


def verify_file(client: Client, path: str | Path | None = None, **kwargs: Any) -> VerifyResult:
    """``client.verify_file(path, **kwargs)`` (kept for code written before the method)."""
    return client.verify_file(path, **kwargs)
