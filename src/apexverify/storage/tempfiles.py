"""Temporary files in the upload and export folders: how they are named and owned, and the
sweep at start-up that removes what a killed process (``kill -9``, a lost machine) left.

Every temporary file ends in ``.part`` while it is written (a finished export, waiting to be
sent, ends in ``.xlsx`` in the exports folder), and its name carries the machine that made it:
``<stem>@<host>.part``. Its writer holds an exclusive ``flock`` on it for as long as the file
is in use; the kernel drops the lock when the process dies, however it dies.

Which leftovers the sweep removes, and why. In scale-out mode several processes, on several
machines, share these folders, so a file may belong to a live process elsewhere. A file is
removed only when nobody holds its lock, and then

- at once when this machine made it: the lock is then authoritative (one kernel), so no
  live process can own it, and a restart after a crash leaves nothing behind;
- otherwise only once it is older than :data:`STALE_AFTER` (an hour): a shared filesystem
  may not carry locks between machines (NFS mounted ``nolock``, some FUSE systems), and the
  age is then the only evidence. It exceeds the longest write by far (the copy of an upload
  takes seconds; a 1M-row XLSX export about four minutes, ``docs/benchmarks.md``).

Where locks are not supported at all, only the age decides.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

PART = ".part"
STALE_AFTER = 3600.0  # seconds; see the module docstring
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def _host_tag() -> str:
    # Only letters, digits and '-' so that the tag can be read back out of a file name.
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:63] or "host"


HOST = _host_tag()


def temp_name(stem: str, suffix: str = PART) -> str:
    """The name of a temporary file made on this machine: ``<stem>@<host><suffix>``."""
    return f"{stem}@{HOST}{suffix}"


def made_here(name: str) -> bool:
    """Whether a temporary file's name says this machine made it."""
    _, at, rest = name.rpartition("@")
    return bool(at) and rest.split(".", 1)[0] == HOST


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc``, or an error it was raised from, is a full disk or an exceeded quota."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _DISK_FULL:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _lock(fd: int, *, wait: bool) -> bool | None:
    """Take the exclusive lock: True when taken, False when another process holds it, None
    when this filesystem has no locks."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return None
    return True


class OwnedFile:
    """A temporary file this process is writing, locked for as long as it is open."""

    def __init__(self, path: Path, file: BinaryIO) -> None:
        self.path = path
        self.file = file

    def rename(self, target: Path) -> None:
        """Give the file its final name; the lock goes with it (same inode)."""
        os.replace(self.path, target)
        self.path = target

    def release(self) -> None:
        """Close (and so unlock) the file, keeping it: it is no longer temporary."""
        self.file.close()

    def discard(self) -> None:
        """Remove the file, then close it. Safe to call more than once."""
        self.path.unlink(missing_ok=True)
        self.file.close()


def create_owned(directory: Path, name: str) -> OwnedFile:
    """Create ``directory/name`` (which must not exist), locked, open for writing."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        _lock(fd, wait=True)
        # A sweep may have removed the file between its creation and the lock: start again.
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return OwnedFile(path, os.fdopen(fd, "wb"))
        except FileNotFoundError:
            pass
        os.close(fd)


def _abandoned(path: Path, now: float, stale_after: float) -> bool:
    """Whether ``path`` is a leftover no live process can own; removes it if so."""
    try:
        # Read-write: NFS turns flock into a POSIX lock, which wants a writable descriptor.
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False  # gone meanwhile, or not ours to open
    try:
        free = _lock(fd, wait=False)
        if free is False:
            return False
        old = now - os.fstat(fd).st_mtime > stale_after
        if not (old or (free and made_here(path.name))):
            return False
        # Removed while the lock is held: a writer that opened it meanwhile notices and
        # creates it again (see create_owned).
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


def sweep(
    directory: Path,
    suffixes: Iterable[str],
    *,
    recursive: bool = False,
    now: float | None = None,
    stale_after: float = STALE_AFTER,
) -> list[Path]:
    """Remove the abandoned temporary files (names ending in one of ``suffixes``) in
    ``directory``; returns the paths removed."""
    ends = tuple(suffixes)
    moment = time.time() if now is None else now
    found = directory.rglob("*") if recursive else directory.glob("*")
    removed = []
    try:
        candidates = [p for p in found if p.name.endswith(ends) and not p.is_symlink()]
    except FileNotFoundError:
        candidates = []  # the folder does not exist (yet): nothing was left in it
    for path in candidates:
        try:
            if path.is_file() and _abandoned(path, moment, stale_after):
                removed.append(path)
        except OSError as exc:  # a leftover we may not remove must not stop the start
            log.warning("could not remove the temporary file %s: %s", path, exc)
    if removed:
        log.info("removed %d abandoned temporary file(s) in %s", len(removed), directory)
    return removed
