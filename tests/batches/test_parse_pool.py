"""The parse pool does not outlive the server: after a ``kill -9`` of the process that
started it, its workers and their forkserver end by themselves."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.support.processes import alive

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from apexverify.batches import parsing

    if __name__ == "__main__":
        pool = parsing._pool(2)
        pids = sorted(set(pool.submit(os.getpid).result() for _ in range(8)))
        forkserver = pool.submit(os.getppid).result()
        print(" ".join(map(str, [*pids, forkserver])), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_workers_and_forkserver_end_after_the_server_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == -9, done.stderr
    pids = [int(pid) for pid in done.stdout.split()]
    assert len(pids) >= 2  # at least one worker and the forkserver
    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if alive(pid)], f"still running: {pids}"
