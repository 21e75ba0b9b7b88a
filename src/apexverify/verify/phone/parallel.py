"""Offline analysis of many numbers on every core.

libphonenumber is pure Python, so threads do not help; chunks go to a process pool instead.
At most ``2 * processes`` chunks are in flight, which keeps results streaming back in input
order without holding a million pending futures (or results) in memory at once.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice

from .analysis import PhoneAnalysis, analyze_chunk

DEFAULT_CHUNK_SIZE = 5_000
# Below this many numbers, starting worker processes costs more than it saves.
_INLINE_LIMIT = 20_000


def _chunks(numbers: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(numbers)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _warm_worker() -> None:
    # Parse one number per worker up front: it imports the region metadata the first chunk
    # would otherwise load while the clock is running.
    analyze_chunk(["+14155550123", "+447700900123"], None)


def iter_analyze(
    numbers: Iterable[str],
    region: str | None,
    *,
    processes: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Iterator[list[PhoneAnalysis]]:
    """Yield the analyses chunk by chunk, in input order, using ``processes`` workers.

    ``processes`` defaults to the number of cores; ``1`` runs in this process.
    """
    workers = processes or os.cpu_count() or 1
    if workers <= 1:
        for chunk in _chunks(numbers, chunk_size):
            yield analyze_chunk(chunk, region)
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=_warm_worker) as pool:
        pending: deque[Future[list[PhoneAnalysis]]] = deque()
        for chunk in _chunks(numbers, chunk_size):
            pending.append(pool.submit(analyze_chunk, chunk, region))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def analyze_many(
    numbers: Sequence[str],
    region: str | None,
    processes: int | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> list[PhoneAnalysis]:
    """Offline analysis of every number, in order, using all cores for large inputs."""
    if processes is None and len(numbers) < _INLINE_LIMIT:
        processes = 1
    results: list[PhoneAnalysis] = []
    for chunk in iter_analyze(numbers, region, processes=processes, chunk_size=chunk_size):
        results.extend(chunk)
    return results
