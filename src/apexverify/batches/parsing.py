"""Streaming classification of an uploaded file into rows.

Lines are read lazily and classified in chunks; nothing holds the whole file. Deduplication
happens afterwards in SQL (``repository/records.py``), so memory does not grow with the file.
Phone parsing is CPU-heavy (libphonenumber), so large phone files are classified in a process
pool over all cores.
"""

from __future__ import annotations

import json
import os
from array import array
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from operator import itemgetter
from pathlib import Path

from ..jobs.orphans import exit_with
from ..store.kinds import RecordKind
from ..verify.base import RecordType, syntax_error_result
from .hashing import value_keyer
from .values import normalizer

# Plain strings in the row tuples: they cross the process pool by the million.
_VALID, _WRONG = RecordKind.VALID.value, RecordKind.WRONG.value
RANGE_BYTES = 1 << 20  # about 30,000 email lines per chunk
POOL_THRESHOLD_BYTES = 1_000_000
# Row tuple as stored: (seq, value, normalized, key_hash, kind, included, verdict, result_json)
Row = tuple[int, str, str | None, bytes, str, bool, str | None, str | None]


@dataclass(frozen=True)
class ParseSpec:
    record_type: RecordType
    target_country: str
    keep_wrong: bool
    secret: bytes


def line_ranges(
    path: Path,
    block: int = RANGE_BYTES,
    *,
    start: int = 0,
    stop: int | None = None,
    first_seq: int = 0,
) -> Iterator[tuple[int, int, int]]:
    """``(start, end, first_seq)`` byte ranges of about ``block`` bytes that end at a line end,
    over the whole file or over ``start..stop`` (itself cut at line ends, its first line
    numbered ``first_seq``).

    ``first_seq`` is the number of lines before ``start``, so a worker can number its lines
    without reading what came before. Only newline counting happens here (in C)."""
    with path.open("rb") as handle:
        seq = first_seq
        while True:
            handle.seek(start)
            want = block if stop is None else min(block, stop - start)
            data = handle.read(want) if want > 0 else b""
            if not data:
                return
            cut = data.rfind(b"\n") + 1 if len(data) == block else len(data)
            if cut == 0:  # one line longer than a block (uploads cap lines at 4 KiB)
                cut = len(data)
            yield start, start + cut, seq
            seq += data.count(b"\n", 0, cut)
            start += cut


def read_range(path: Path, start: int, end: int, first_seq: int) -> list[tuple[int, str]]:
    """(seq, trimmed value) for the non-blank lines of one range."""
    with path.open("rb") as handle:
        handle.seek(start)
        text = handle.read(end - start).decode("utf-8")
    lines = text.split("\n")
    return [(first_seq + i, s) for i, line in enumerate(lines) if (s := line.strip())]


def iter_chunks(path: Path) -> Iterator[list[tuple[int, str]]]:
    for start, end, first_seq in line_ranges(path):
        yield read_range(path, start, end, first_seq)


@dataclass
class ClassifiedBlock:
    """The rows of one range, classified, in the shapes the loader binds and the duplicate
    finder reads: they cross the process pool by the million, so each row is a few plain
    objects in flat lists (no per-row tuple of eight), and the finder's input is two arrays
    (pickled as two buffers).

    ``canonical``: ``seq, value, key`` of valid rows already in canonical form (the common
    case: ``normalized`` stays NULL); ``renamed``: ``seq, value, normalized, key`` of the other
    valid rows; ``wrong``: ``seq, value, key`` of malformed rows (stored with ``verdict`` wrong,
    ``included`` = ``keep_wrong`` and the syntax-error result ``wrong_json``). ``seqs`` and
    ``keys`` (the 16-byte keys joined) list every row in file order."""

    canonical: list[object]
    renamed: list[object]
    wrong: list[object]
    seqs: array[int]
    keys: bytes
    keep_wrong: bool
    wrong_json: str

    def __len__(self) -> int:
        return len(self.seqs)

    @property
    def wrong_count(self) -> int:
        return len(self.wrong) // 3

    def rows(self) -> list[Row]:
        """The rows as stored, in file order (the tuple form of ``Row``)."""
        c, r, w = self.canonical, self.renamed, self.wrong
        rows: list[Row] = [
            (c[i], c[i + 1], None, c[i + 2], _VALID, True, None, None)  # type: ignore[misc]
            for i in range(0, len(c), 3)
        ]
        rows += [
            (r[i], r[i + 1], r[i + 2], r[i + 3], _VALID, True, None, None)  # type: ignore[misc]
            for i in range(0, len(r), 4)
        ]
        rows += [
            (w[i], w[i + 1], None, w[i + 2], _WRONG, self.keep_wrong, "wrong", self.wrong_json)  # type: ignore[misc]
            for i in range(0, len(w), 3)
        ]
        rows.sort(key=itemgetter(0))
        return rows


def classify_block(spec: ParseSpec, chunk: list[tuple[int, str]]) -> ClassifiedBlock:
    """Classify ``(seq, trimmed value)`` lines: the one per-row rule of the parse."""
    normalize = normalizer(spec.record_type, spec.target_country)
    key = value_keyer(spec.secret)
    canonical: list[object] = []
    renamed: list[object] = []
    wrong: list[object] = []
    keys: list[bytes] = []
    add_key = keys.append
    for seq, value in chunk:
        norm = normalize(value)
        if norm is None:
            k = key(value)
            wrong += (seq, value, k)
        elif norm == value:  # most addresses are already canonical: stored once
            k = key(norm)
            canonical += (seq, value, k)
        else:
            k = key(norm)
            renamed += (seq, value, norm, k)
        add_key(k)
    return ClassifiedBlock(
        canonical=canonical,
        renamed=renamed,
        wrong=wrong,
        seqs=array("i", [seq for seq, _ in chunk]),
        keys=b"".join(keys),
        keep_wrong=spec.keep_wrong,
        wrong_json=json.dumps(syntax_error_result(spec.record_type).to_dict()),
    )


def classify(spec: ParseSpec, chunk: list[tuple[int, str]]) -> list[Row]:
    return classify_block(spec, chunk).rows()


_POOL: ProcessPoolExecutor | None = None
_AHEAD = 2


def pool_size(configured: int) -> int:
    """The configured number of parse workers, else one per core. (One per core but one, to
    leave the loading process a core, measured slower on 2 cores: the lone worker became the
    bottleneck.)"""
    return configured or os.cpu_count() or 1


def _pool(workers: int) -> Executor:
    global _POOL
    if _POOL is None:
        # forkserver: forking a process that runs an event loop and threads is unsafe.
        _POOL = ProcessPoolExecutor(
            workers,
            mp_context=get_context("forkserver"),
            initializer=exit_with,
            initargs=(os.getpid(),),
        )
    return _POOL


def classify_range(
    spec: ParseSpec, path: Path, start: int, end: int, first_seq: int
) -> ClassifiedBlock:
    """Runs in a parse worker: read one range of the file and classify it."""
    return classify_block(spec, read_range(path, start, end, first_seq))


def classified_chunks(
    spec: ParseSpec, path: Path, workers: int = 0, span: tuple[int, int, int] | None = None
) -> Iterator[list[Row]]:
    """:func:`classified_blocks` as row tuples."""
    for block in classified_blocks(spec, path, workers, span):
        yield block.rows()


def classified_blocks(
    spec: ParseSpec, path: Path, workers: int = 0, span: tuple[int, int, int] | None = None
) -> Iterator[ClassifiedBlock]:
    """Classified rows in file order, of the whole file or of one ``(start, stop, first_seq)``
    span. A large file or span is classified in a process pool, so the caller's thread only
    loads rows into the database while the workers parse ahead."""
    start, stop, first_seq = span or (0, path.stat().st_size, 0)
    ranges = line_ranges(path, start=start, stop=stop, first_seq=first_seq)
    use_pool = (os.cpu_count() or 1) > 1 and stop - start > POOL_THRESHOLD_BYTES
    if not use_pool:
        for range_start, range_end, range_seq in ranges:
            yield classify_range(spec, path, range_start, range_end, range_seq)
        return
    workers = pool_size(workers)
    pool = _pool(workers)
    pending = []
    # Workers read their own ranges of the file; a bounded number of ranges is in flight so
    # memory stays flat on huge files (two per worker; the load runs on its own thread, so
    # the results are taken while it commits).
    for start, end, first_seq in ranges:
        pending.append(pool.submit(classify_range, spec, path, start, end, first_seq))
        if len(pending) >= workers * _AHEAD:
            yield pending.pop(0).result()
    for future in pending:
        yield future.result()


def _ready() -> bool:
    return True


def warm_pool(workers: int = 0) -> None:
    """Start the parse workers ahead of the first large upload (their imports take a second)."""
    if (os.cpu_count() or 1) > 1:
        workers = pool_size(workers)
        pool = _pool(workers)
        for future in [pool.submit(_ready) for _ in range(workers)]:
            future.result()


def shutdown_pool() -> None:
    global _POOL
    if _POOL is not None:
        _POOL.shutdown(cancel_futures=True)
        _POOL = None
