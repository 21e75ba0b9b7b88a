"""The whole workflow in one call, resumable from any step given a batch UUID."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import ApexVerifyError, BatchFailed
from ._models import BatchStatus

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


def poll_delays(initial: float, cap: float = 60.0) -> Iterator[float]:
    """The guide's advice: start small, double each cycle, cap at 60 s."""
    delay = initial
    while True:
        yield delay
        delay = min(delay * 2, cap)


def wait_for(
    client: Client,
    batch_uuid: str,
    wanted: set[str],
    *,
    initial_delay: float,
    max_delay: float,
    on_progress: ProgressCallback | None,
) -> BatchStatus:
    delays = poll_delays(initial_delay, max_delay)
    while True:
        status = client.status(batch_uuid)
        if on_progress:
            on_progress(status)
        if status.status == "internal_error":
            raise BatchFailed(f"batch {batch_uuid}: {status.message or 'internal_error'}")
        if status.status in wanted:
            return status
        time.sleep(next(delays))


def verify_file(
    client: Client,
    path: str | Path | None = None,
    *,
    type: str = "email",
    target_country: str = "US",
    name: str | None = None,
    batch_uuid: str | None = None,
    outputs: list[str | Path] | None = None,
    confirm: ConfirmCallback | None = None,
    on_progress: ProgressCallback | None = None,
    initial_delay: float = 5.0,
    max_delay: float = 60.0,
    **params: Any,
) -> VerifyResult:
    """Upload ``path`` (or resume ``batch_uuid``), configure, parse, wait for
    ``ready_for_verification``, ask ``confirm`` with the cost, launch, poll with exponential
    backoff capped at ``max_delay``, and write each output (``.json`` or ``.xlsx``)."""
    if batch_uuid is None:
        if path is None:
            raise ValueError("give a file to upload or a batch_uuid to resume")
        upload = client.upload(
            path, name=name or Path(path).name, type=type, target_country=target_country
        )
        batch_uuid = upload.batch_uuid
        client.configure(batch_uuid, type=type, target_country=target_country, **params)
        client.parse(batch_uuid)
    status = client.status(batch_uuid)
    if status.status in ("parsing_content", "internal_error"):
        if status.status == "internal_error":
            client.parse(batch_uuid)  # a re-parse is the documented retry
        status = wait_for(
            client,
            batch_uuid,
            {"ready_for_verification"},
            initial_delay=initial_delay,
            max_delay=max_delay,
            on_progress=on_progress,
        )
    if status.status == "ready_for_verification":
        if confirm is not None and not confirm(status):
            raise Declined(batch_uuid)
        client.launch(batch_uuid)
    status = wait_for(
        client,
        batch_uuid,
        {"verification_done"},
        initial_delay=initial_delay,
        max_delay=max_delay,
        on_progress=on_progress,
    )
    result = VerifyResult(batch_uuid, status)
    for output in outputs or []:
        target = Path(output)
        fmt = "xlsx" if target.suffix.lower() == ".xlsx" else "json"
        target.write_bytes(client.export(batch_uuid, fmt))
        result.outputs.append(target)
    return result
