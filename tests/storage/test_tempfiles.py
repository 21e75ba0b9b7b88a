"""Temporary files of the upload and export folders: a live writer's file is never swept, a
dead one's is, and a file another machine made goes only once it is old."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from apexverify.settings import Settings
from apexverify.storage import exports_dir, sweep_leftovers
from apexverify.storage.tempfiles import (
    HOST,
    STALE_AFTER,
    create_owned,
    is_disk_full,
    made_here,
    sweep,
    temp_name,
)


def _dead_file(directory: Path, name: str, age: float = 0.0) -> Path:
    """A temporary file whose writer is gone: nobody holds its lock."""
    owned = create_owned(directory, name)
    owned.file.write(b"half a file")
    owned.release()
    if age:
        past = time.time() - age
        os.utime(owned.path, (past, past))
    return owned.path


def test_names_say_which_machine_made_them() -> None:
    name = temp_name("b1.txt")
    assert name == f"b1.txt@{HOST}.part"
    assert made_here(name)
    assert made_here(temp_name("b1-x", ".xlsx"))
    assert not made_here("b1.txt@another-machine.part")
    assert not made_here("b1.part")  # made before names carried the machine


def test_a_live_writers_file_is_kept_and_a_dead_ones_removed(tmp_path: Path) -> None:
    live = create_owned(tmp_path, temp_name("live.txt"))
    live.file.write(b"being written")
    dead = _dead_file(tmp_path, temp_name("dead.txt"))

    assert sweep(tmp_path, [".part"]) == [dead]
    assert live.path.exists()
    assert not dead.exists()

    # Once its writer lets go (as the kernel does when a process dies), it goes too.
    live.release()
    assert sweep(tmp_path, [".part"]) == [live.path]


def test_the_lock_follows_the_file_to_its_final_name(tmp_path: Path) -> None:
    owned = create_owned(tmp_path, temp_name("export"))
    owned.rename(tmp_path / temp_name("export", ".xlsx"))
    assert sweep(tmp_path, [".part", ".xlsx"]) == []
    owned.discard()
    assert not owned.path.exists()
    owned.discard()  # twice is harmless


def test_another_machines_file_goes_only_once_old(tmp_path: Path) -> None:
    fresh = _dead_file(tmp_path, "b1.txt@another-machine.part")
    old = _dead_file(tmp_path, "b2.txt@another-machine.part", age=STALE_AFTER + 60)
    legacy = _dead_file(tmp_path, "b3.part", age=STALE_AFTER + 60)
    assert sorted(sweep(tmp_path, [".part"])) == sorted([old, legacy])
    assert fresh.exists()
    # An hour later, the fresh one is stale too.
    assert sweep(tmp_path, [".part"], now=time.time() + STALE_AFTER + 60) == [fresh]


def test_other_files_and_missing_folders_are_left_alone(tmp_path: Path) -> None:
    kept = tmp_path / "b1.txt"
    kept.write_bytes(b"a stored upload")
    _dead_file(tmp_path, temp_name("b2.txt"))
    assert [p.name for p in sweep(tmp_path, [".part"])] == [temp_name("b2.txt")]
    assert kept.exists()
    assert sweep(tmp_path / "missing", [".part"]) == []


def test_start_up_sweep_covers_uploads_and_exports(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    upload = _dead_file(settings.uploads_dir, temp_name("b1.txt"))
    partial = _dead_file(exports_dir(settings), temp_name("b1-a"))
    finished = _dead_file(exports_dir(settings), temp_name("b1-b", ".xlsx"))
    stored = settings.uploads_dir / "b2.txt"
    stored.write_bytes(b"kept")
    assert sorted(sweep_leftovers(settings)) == sorted([upload, partial, finished])
    assert stored.exists()


def test_a_full_disk_is_recognised_through_wrapping_errors() -> None:
    wrapped = RuntimeError("the writer gave up")
    wrapped.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert is_disk_full(wrapped)
    context = ValueError("while handling")
    context.__context__ = OSError(errno.EDQUOT, "Disk quota exceeded")
    assert is_disk_full(context)
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(ValueError("no"))
