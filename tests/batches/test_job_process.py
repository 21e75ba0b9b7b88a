"""The embedded server's job process (``composition.with_job_process``): a parse and the
sandbox's chunks run in it, not in the server's process, and give the same results as on
the server's threads; what they defer (webhook deliveries) reaches the server's queue, and
what they count reaches the server's metrics. Real SQLite shared by both processes, a real
webhook receiver on loopback."""

from __future__ import annotations

import os
import signal
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from apexverify import composition
from apexverify.batches import verification
from apexverify.batches.context import Services
from apexverify.batches.repository import row_load
from apexverify.batches.retry import parse_failure_may_pass
from apexverify.composition import with_job_process
from apexverify.jobs.base import JobQueue
from apexverify.jobs.process_host import HostLost, ProcessHost
from apexverify.verify.sandbox import SandboxVerifier
from tests.support.fakes import FakeEngines
from tests.support.fast import Lab, open_lab
from tests.webhooks.receiver import receiving
from tests.webhooks.test_service import register

pytestmark = pytest.mark.fast

MAGIC = ("valid", "invalid", "unknown", "catchall", "role", "someone")
CONTENT = "".join(f"{MAGIC[i % len(MAGIC)]}+{i}@example{i % 3}.com\n" for i in range(300))
CONTENT += "Valid+0@example0.com\nnot-an-address\nvalid+0@example0.com\n"  # repeats, a wrong row


def _not_here(*_args: Any, **_kwargs: Any) -> None:
    raise AssertionError("a job body ran in the server's process")


def _verified(verdict: str) -> float:
    value = REGISTRY.get_sample_value(
        "apexverify_records_verified_total", {"type": "email", "verdict": verdict}
    )
    return value or 0.0


async def _parse_verify_export(lab: Lab) -> tuple[list[str], dict[str, Any], Any]:
    _account, key = lab.account(sandbox=True, email=10_000)
    with receiving() as receiver:
        await register(lab, key, receiver.url)
        batch_uuid = await lab.upload(key, CONTENT)
        ready = (await lab.get(key, f"/v1/batch/{batch_uuid}")).json()
        assert ready["status"] == "ready_for_verification", ready
        assert (await lab.post(key, f"/v1/batch/{batch_uuid}")).json() == {"status": "ok"}
        await lab.queue.run_all()
        events = [r.json["type"] for r in receiver.received]
    done = (await lab.get(key, f"/v1/batch/{batch_uuid}")).json()
    exported = (await lab.get(key, f"/v1/batch/{batch_uuid}/export", format="json")).json()
    return events, {"ready": ready["found_content"], "done": done["stats"]}, exported


def _lab(path: Path) -> Any:
    return open_lab(
        path,
        FakeEngines(SandboxVerifier("email")),
        verify_chunk_size=50,
        webhooks_allow_private_networks=True,
        webhooks_retry_base_seconds=0.0,
    )


async def test_a_parse_and_sandbox_chunks_run_in_the_job_process_with_the_same_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _lab(tmp_path / "threads") as lab:
        on_threads = await _parse_verify_export(lab)

    valid_before = _verified("valid")
    async with _lab(tmp_path / "hosted") as lab:
        with_job_process(lab.services)
        host = lab.services.host
        assert host is not None
        try:
            # In this process the bodies' database steps fail: they must run elsewhere.
            monkeypatch.setattr(row_load, "load_block", _not_here)
            monkeypatch.setattr(verification, "_claim", _not_here)
            hosted = await _parse_verify_export(lab)
        finally:
            host.stop()

    events, counts, exported = hosted
    assert events == ["batch.ready_for_verification", "batch.verification_done"]
    # One verbatim and one case-only repeat of the first address.
    assert counts["ready"] == {"valid_email": 300, "wrong_email": 1, "duplicate_email": 2}
    for export in (exported, on_threads[2]):  # the only difference: which batch
        export["_statistics"].pop("batch_uuid")
    assert hosted == on_threads
    # Counted here although written there ("role" and "someone" addresses are valid).
    assert counts["done"]["total_verification_valid"] == 150
    assert _verified("valid") - valid_before == 150
    assert len(exported) == 301  # 300 distinct addresses (the wrong row is removed), statistics


class _DiesOnce:
    """Uploads whose first read kills the job process (as the OOM killer would)."""

    def __init__(self, inner: Any, marker: Path) -> None:
        self._inner, self._marker = inner, marker

    def local_path(self, name: str) -> Path:
        if not self._marker.exists():
            self._marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return Path(self._inner.local_path(name))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def dying_services(
    settings: Any, secret: bytes, retry: Any, marker: str, queue: JobQueue
) -> Services:
    """The job process's services, with uploads that kill it once (module level: the job
    process imports it by name)."""
    services = composition.hosted_services(settings, secret, retry, "INFO", queue)
    services.storage = _DiesOnce(services.storage, Path(marker))
    return services


async def test_a_parse_whose_job_process_died_is_done_again_in_a_new_one(tmp_path: Path) -> None:
    assert parse_failure_may_pass(HostLost("the job process died"))
    marker = tmp_path / "died"
    async with _lab(tmp_path / "lab") as lab:
        services = lab.services
        factory = partial(
            dying_services, services.settings, services.secret, services.retry, str(marker)
        )
        host = ProcessHost("job", factory, lab.queue, composition.release_hosted)
        services.host = host
        try:
            first = host.warm()
            _account, key = lab.account(sandbox=True, email=10_000)
            batch_uuid = await lab.upload(key, CONTENT)  # the retry runs in the same pass
            status = (await lab.get(key, f"/v1/batch/{batch_uuid}")).json()
            second = host.warm()
        finally:
            host.stop()
    assert marker.exists()  # the first attempt's process died
    assert second != first
    assert status["status"] == "ready_for_verification", status
    assert status["found_content"] == {"valid_email": 300, "wrong_email": 1, "duplicate_email": 2}
    parses = [j for j in lab.queue.history if j.task == "parse_batch"]
    assert [j.args["attempt"] for j in parses] == [1, 2]


def test_without_the_setting_the_server_keeps_its_jobs(tmp_path: Path) -> None:
    import asyncio

    async def check() -> None:
        async with open_lab(tmp_path, job_process=False) as lab:
            with_job_process(lab.services)
            assert lab.services.host is None

    asyncio.run(check())
