"""Hostile uploads and what crashes leave behind (issue #15).

A 2 GiB chunked upload is cut off at the limit, and one without a valid key refused unread,
with the server's disk use watched while the body streams (its data folder and the temporary
folder it spools into, unlinked files included). A full disk is a 507 that loses nothing
stored. After ``kill -9`` in the middle of an upload's copy or of an XLSX export, a restart
leaves no temporary file behind.
"""

from __future__ import annotations

import asyncio
import errno
import io
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import pytest
from starlette.datastructures import UploadFile

from apexverify.accounts import service as accounts
from apexverify.errors import ParseError, StorageFull
from apexverify.storage import tempfiles
from apexverify.store.db import Store
from apexverify.web import uploads
from tests.api.helpers import Api
from tests.support.dashboard import csrf, signed_in
from tests.support.server import LiveServer, start_server

MiB = 1024 * 1024
LIMIT = 32 * MiB
HOSTILE_BYTES = 2 * 1024**3
BOUNDARY = "apexverify-test-boundary"
LINE = b"valid@example.com\n"

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="disk use is read from /proc (Linux)"
)


# -- watching the server's disk ---------------------------------------------------------------


def disk_use(server: LiveServer, folders: Sequence[Path]) -> int:
    """Bytes of the files in ``folders``, named or not: the files listed there, plus those the
    server holds open there (a spooled upload is an unlinked file, seen only in /proc)."""
    sizes: dict[tuple[int, int], int] = {}
    for folder in folders:
        for path in folder.rglob("*"):
            try:
                found = path.lstat()
            except FileNotFoundError:
                continue
            if path.is_file() and not path.is_symlink():
                sizes[(found.st_dev, found.st_ino)] = found.st_size
    assert server.process is not None
    for fd in Path(f"/proc/{server.process.pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
            held = os.stat(fd)
        except OSError:
            continue  # closed meanwhile
        if any(target.startswith(f"{folder}/") for folder in folders):
            sizes[(held.st_dev, held.st_ino)] = held.st_size
    return sum(sizes.values())


class HostileBody:
    """A multipart upload of ``total`` bytes of valid lines, made as it is sent (chunked),
    sampling the server's disk use before each chunk."""

    def __init__(self, fields: dict[str, str], total: int, watch: Callable[[], int]) -> None:
        self.fields = fields
        self.total = total
        self.watch = watch
        self.sent = 0
        self.peak = 0

    def _head(self) -> bytes:
        parts = [
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            for name, value in self.fields.items()
        ]
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            'filename="huge.txt"\r\nContent-Type: text/plain\r\n\r\n'
        )
        return "".join(parts).encode()

    def chunks(self) -> Iterator[bytes]:
        yield self._head()
        chunk = LINE * (256 * 1024 // len(LINE))
        while self.sent < self.total:
            self.peak = max(self.peak, self.watch())
            if self.peak > LIMIT + MiB:
                return  # the server is keeping it all: the test has failed, no need to go on
            yield chunk
            self.sent += len(chunk)
        yield f"\r\n--{BOUNDARY}--\r\n".encode()


@dataclass
class Guarded:
    """One server for the whole module: a 32 MiB limit, spooling into a temporary folder of
    its own, an account. The crash tests restart it; every test leaves it running."""

    server: LiveServer
    spool: Path
    api_key: str

    @property
    def folders(self) -> list[Path]:
        return [self.server.data_dir / "var", self.spool]

    @property
    def api(self) -> Api:
        return Api(self.server.base_url, self.api_key)


def _new_account(server: LiveServer) -> str:
    """A sandbox account written straight into the server's database (the CLI would cost a
    process start)."""
    store = Store(server.env["APEXVERIFY_DATABASE_URL"])
    try:
        with store.write() as session:
            _, key = accounts.create_account(
                session, "uploads", sandbox=True, email_credits=10_000, phone_credits=10_000
            )
            return key.api_key
    finally:
        store.dispose()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guarded]:
    root = tmp_path_factory.mktemp("guarded")
    spool = root / "tmp"
    spool.mkdir()
    server = start_server(root, APEXVERIFY_MAX_UPLOAD_BYTES=str(LIMIT), TMPDIR=str(spool))
    try:
        yield Guarded(server, spool, _new_account(server))
    finally:
        server.stop()


def _send_hostile(
    guarded: Guarded, client: httpx.Client, path: str, fields: dict[str, str]
) -> tuple[httpx.Response, HostileBody, int]:
    """POST 2 GiB to ``path``; returns the answer, the body (bytes sent, peak disk use) and
    the disk use before."""
    before = disk_use(guarded.server, guarded.folders)
    body = HostileBody(
        fields, HOSTILE_BYTES, lambda: disk_use(guarded.server, guarded.folders) - before
    )
    answer = client.post(
        path,
        content=body.chunks(),
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    return answer, body, before


UPLOAD_FIELDS = {"name": "huge", "type": "email", "target_country": "US"}


def _batch_total(guarded: Guarded) -> int:
    total: int = guarded.api.client.get("/v1/batch").json()["total"]
    return total


@pytest.mark.parametrize(
    ("key", "status"),
    [("valid", 413), (None, 401), ("apx_not_a_key", 401)],
    ids=["with-key", "no-key", "wrong-key"],
)
def test_a_2_gib_chunked_upload_is_stopped_at_the_limit(
    guarded: Guarded, key: str | None, status: int
) -> None:
    headers = {"X-API-Key": guarded.api_key if key == "valid" else key} if key else {}
    batches = _batch_total(guarded)
    with httpx.Client(base_url=guarded.server.base_url, headers=headers, timeout=60) as client:
        answer, body, before = _send_hostile(guarded, client, "/v1/batch", UPLOAD_FIELDS)

    assert answer.status_code == status, answer.text
    assert answer.json()["message"]
    assert answer.headers["connection"] == "close"  # the rest is not read, nor drained
    assert body.peak <= LIMIT + MiB, f"{body.peak} bytes written for a {LIMIT}-byte limit"
    if status == 401:
        assert body.peak == 0  # refused before a byte of the body was read
    else:
        assert f"{LIMIT} bytes" in answer.json()["message"]
    # Cut off early: a few socket buffers past the limit, not 2 GiB.
    assert body.sent < 256 * MiB
    assert disk_use(guarded.server, guarded.folders) == before  # nothing left anywhere
    assert _batch_total(guarded) == batches


def test_a_2_gib_dashboard_upload_is_stopped_at_the_limit(guarded: Guarded) -> None:
    batches = _batch_total(guarded)
    client = signed_in(guarded.server, guarded.api_key)
    try:
        fields = {"csrf_token": csrf(client, "/batches/new"), **UPLOAD_FIELDS}
        answer, body, before = _send_hostile(guarded, client, "/batches/new", fields)
    finally:
        client.close()
    assert answer.status_code == 413
    assert "larger than" in answer.text  # the upload form again, with the reason
    assert body.peak <= LIMIT + MiB
    assert body.sent < 256 * MiB
    assert disk_use(guarded.server, guarded.folders) == before
    assert _batch_total(guarded) == batches


def test_a_declared_length_over_the_limit_is_refused_unread(guarded: Guarded) -> None:
    head = (
        "POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"X-API-Key: {guarded.api_key}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {HOSTILE_BYTES}\r\n\r\n"
    )
    # A raw socket: an HTTP client would refuse to send less than it declares.
    with socket.create_connection(("127.0.0.1", guarded.server.port), timeout=30) as sock:
        sock.sendall(head.encode() + b"x" * 1024)
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 413"), reply
    # A body that cannot carry a file gets only the envelope's room.
    too_big = guarded.api.client.post("/v1/batch", json={"name": "x" * (128 * 1024)})
    assert too_big.status_code == 413


@pytest.mark.parametrize("key", ["valid", None], ids=["with-key", "no-key"])
def test_a_huge_json_body_is_refused_before_it_is_read(guarded: Guarded, key: str | None) -> None:
    headers = {"X-API-Key": guarded.api_key} if key else {}

    def chunks() -> Iterator[bytes]:
        yield b'{"type": "email", "unit": "'
        for _ in range(400):  # 400 MiB, chunked: no declared length to refuse
            yield b"a" * MiB
        yield b'"}'

    with httpx.Client(base_url=guarded.server.base_url, headers=headers, timeout=60) as client:
        answer = client.post(
            "/v1/unit", content=chunks(), headers={"Content-Type": "application/json"}
        )
        declared = client.put(
            f"/v1/batch/{'0' * 8}-0000-0000-0000-{'0' * 12}",
            content=b"{" + b" " * (2 * MiB) + b"}",
            headers={"Content-Type": "application/json"},
        )
    for refused in (answer, declared):
        assert refused.status_code == 413, refused.text
        assert "larger than" in refused.json()["message"]
    # Small JSON bodies are untouched.
    ok = guarded.api.client.post("/v1/unit", json={"type": "email", "unit": "a@example.com"})
    assert ok.status_code == 200


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted over ``path`` (the server resolves its folders at each
    write, so a running one writes into it); the test is skipped if it cannot be (not root)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], capture_output=True, check=False)


def test_a_full_disk_is_507_and_loses_nothing_stored(guarded: Guarded) -> None:
    api = guarded.api
    var = guarded.server.data_dir / "var"
    # Smaller than a file the limit lets in (uploads), and than any workbook (exports).
    with tmpfs(var / "uploads", "2m") as uploads_dir, tmpfs(var / "exports", "4k") as exports:
        batches = _batch_total(guarded)
        kept = api.run("".join(f"user{i}@example.com\n" for i in range(300)))
        stored = (uploads_dir / f"{kept}.txt").read_bytes()

        full = api.upload(LINE * (3 * MiB // len(LINE)))  # under the limit, over the space
        assert full.status_code == 507, full.text
        assert "storage is full" in full.json()["message"]
        assert [p.name for p in uploads_dir.iterdir()] == [f"{kept}.txt"]  # no partial file
        assert (uploads_dir / f"{kept}.txt").read_bytes() == stored
        assert _batch_total(guarded) == batches + 1
        assert api.export_json(kept)  # the stored batch is whole

        # The exports folder is smaller than the workbook: 507 too, nothing left there.
        export = api.client.get(f"/v1/batch/{kept}/export", params={"format": "xlsx"})
        assert export.status_code == 507, export.text
        assert "storage is full" in export.json()["message"]
        assert list(exports.iterdir()) == []

        # The space the refused upload took is free again.
        assert api.new_batch("valid@example.com\n")


def test_a_full_spool_disk_is_507_for_the_api_and_the_dashboard(guarded: Guarded) -> None:
    """The multipart parser spools a file part over 1 MiB to TMPDIR before any upload code
    runs: when that disk is full, the answer is still 507, not 400 or 500."""
    content = LINE * (3 * MiB // len(LINE))
    with tmpfs(guarded.spool, "1m"):
        batches = _batch_total(guarded)
        api = guarded.api.upload(content)
        assert api.status_code == 507, api.text
        assert "storage is full" in api.json()["message"]
        client = signed_in(guarded.server, guarded.api_key)
        try:
            fields = {"csrf_token": csrf(client, "/batches/new"), **UPLOAD_FIELDS}
            page = client.post(
                "/batches/new", data=fields, files={"file": ("l.txt", content, "text/plain")}
            )
        finally:
            client.close()
        assert page.status_code == 507, page.text
        assert "storage is full" in page.text
        assert _batch_total(guarded) == batches


# -- kill -9 and restart -----------------------------------------------------------------------


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def _descendants(pid: int) -> list[int]:
    """The processes under ``pid`` (the parse pool's forkserver and its workers)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _crash(server: LiveServer) -> None:
    """``kill -9`` the server, then its parse pool, which would outlive it as orphans."""
    assert server.process is not None
    orphans = _descendants(server.process.pid)
    server.kill()
    for pid in orphans:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _kill_once_present(
    server: LiveServer,
    folder: Path,
    pattern: str,
    work: Callable[[], httpx.Response],
    min_size: int = 0,
) -> Path | None:
    """Run ``work`` in a thread and ``kill -9`` the server as soon as a file matching
    ``pattern`` (of at least ``min_size`` bytes) is in ``folder``; returns that file, or None
    if ``work`` finished first."""
    with ThreadPoolExecutor(1) as pool:
        answer: Future[httpx.Response] = pool.submit(work)
        while not answer.done():
            found = [p for p in folder.glob(pattern) if _size(p) >= min_size]
            if found:
                _crash(server)
                return found[0] if found[0].exists() else None
            time.sleep(0.001)
    return None


def _quietly(work: Callable[[], httpx.Response]) -> Callable[[], httpx.Response]:
    def run() -> httpx.Response:
        try:
            return work()
        except httpx.HTTPError:  # the server was killed under it
            return httpx.Response(599)

    return run


def _empty_soon(folder: Path) -> bool:
    """Whether ``folder`` is empty, given a moment: an export goes just after it is sent."""
    deadline = time.monotonic() + 10
    while any(folder.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not any(folder.iterdir())


def test_kill_9_during_an_xlsx_export_leaves_nothing_after_restart(guarded: Guarded) -> None:
    server, api = guarded.server, guarded.api
    batch_uuid = api.run("".join(f"user{i}@example{i % 50}.com\n" for i in range(1500)))
    exports_dir = server.data_dir / "var" / "exports"

    def export() -> httpx.Response:
        return api.client.get(f"/v1/batch/{batch_uuid}/export", params={"format": "xlsx"})

    left = _kill_once_present(server, exports_dir, f"{batch_uuid}-*", _quietly(export))
    assert left is not None, "the export finished before the server could be killed"
    assert left.name.endswith((".part", ".xlsx"))  # recognisably temporary

    server.start()
    assert list(exports_dir.iterdir()) == []
    # A finished export is removed once sent, too.
    answer = export()
    assert answer.status_code == 200
    assert answer.content.startswith(b"PK")
    assert _empty_soon(exports_dir)


def test_kill_9_during_an_upload_copy_leaves_nothing_after_restart(guarded: Guarded) -> None:
    server, api = guarded.server, guarded.api
    uploads_dir = server.data_dir / "var" / "uploads"
    batches = _batch_total(guarded)
    left = None
    for size in (16 * MiB, 31 * MiB):  # bigger if the copy was done before it could be seen
        upload = partial(api.upload, LINE * (size // len(LINE)))
        left = _kill_once_present(server, uploads_dir, "*.part", _quietly(upload), min_size=1)
        if left is not None:
            break
        batches += 1
    assert left is not None, "the copy always finished before the server could be killed"
    assert left.stat().st_size > 0  # half a file: what a crash used to leave forever

    server.start()
    assert [p for p in uploads_dir.iterdir() if p.name.endswith(".part")] == []
    # The spooled body was an unnamed file (only multiprocessing's pymp-* folders are there).
    assert [p for p in guarded.spool.rglob("*") if p.is_file()] == []
    assert _batch_total(guarded) == batches


# -- the copy's failure paths, in-process -------------------------------------------------------


def _upload_file(content: bytes) -> UploadFile:
    return UploadFile(file=io.BytesIO(content), filename="list.txt")


def _full_disk(directory: Path, name: str) -> tempfiles.OwnedFile:
    """The real locked temporary file, but every write to it fails as on a full disk."""
    owned = tempfiles.create_owned(directory, name)
    owned.file.close()
    owned.file = open("/dev/full", "wb", buffering=0)  # noqa: SIM115 - closed by discard
    return owned


def test_every_failed_copy_removes_its_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "uploads" / "b1.txt"

    with pytest.raises(ParseError):
        asyncio.run(uploads.receive_upload(_upload_file(b"a,b\n"), dest, "email", MiB))
    assert list(dest.parent.iterdir()) == []

    class Cancelled(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            if self.tell() > 0:
                raise asyncio.CancelledError
            return super().read(size)

    cancelled = UploadFile(file=Cancelled(LINE * 100_000), filename="list.txt")
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(uploads.receive_upload(cancelled, dest, "email", 10 * MiB))
    assert list(dest.parent.iterdir()) == []

    if Path("/dev/full").exists():
        monkeypatch.setattr(uploads, "create_owned", _full_disk)
        with pytest.raises(StorageFull) as full:
            asyncio.run(uploads.receive_upload(_upload_file(LINE), dest, "email", MiB))
        assert full.value.status_code == 507
        assert isinstance(full.value.__cause__, OSError)
        assert full.value.__cause__.errno == errno.ENOSPC
        assert list(dest.parent.iterdir()) == []
