"""Credits are integer milli-credits inside the service and floats at the API edge."""

from __future__ import annotations

MILLI = 1000


def to_milli(credits: float) -> int:
    return round(credits * MILLI)


def from_milli(milli: int) -> float:
    return milli / MILLI
