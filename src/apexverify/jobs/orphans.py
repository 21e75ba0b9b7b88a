"""Child processes that end with the server: after a ``kill -9`` of the server neither a
pool worker nor the forkserver it came from exits by itself (the forkserver outlives its
parent), and each would hold tens of MB forever.

Standard library only: the parse workers import this, and they stay small.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

WATCH_SECONDS = 1.0


def exit_with(server_pid: int) -> None:
    """Process initializer: end this process, and the forkserver it came from, once
    ``server_pid`` is gone."""

    def watch() -> None:
        while True:
            time.sleep(WATCH_SECONDS)
            if gone(server_pid):
                forkserver = os.getppid()
                if forkserver not in (1, server_pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(forkserver, signal.SIGKILL)
                os._exit(1)

    threading.Thread(target=watch, name="server-watch", daemon=True).start()


def gone(pid: int) -> bool:
    """Has ``pid`` exited? A killed server that its own parent has not reaped yet is a
    zombie: gone, although signals still reach it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:  # no /proc (not Linux): ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return stat.rpartition(")")[2].split()[0] == "Z"
