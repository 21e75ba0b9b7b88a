"""Process checks shared by the tests of what outlives a killed server."""

from __future__ import annotations

from pathlib import Path


def alive(pid: int) -> bool:
    """Is ``pid`` running? A zombie (exited, not yet reaped) is not."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
