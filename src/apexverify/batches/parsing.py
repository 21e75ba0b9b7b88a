"""Streaming classification of an uploaded file into rows.

Lines are read lazily and classified in chunks; nothing holds the whole file. Deduplication
happens afterwards in SQL (``store/records.py``), so memory does not grow with the file.
Phone parsing is CPU-heavy (libphonenumber), so large phone files are classified in a process
pool over all cores.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from itertools import islice
from multiprocessing import get_context
from pathlib import Path

from ..verify.base import syntax_error_result
from ..verify.email.syntax import normalize_email
from ..verify.phone.numbering import normalize_phone
from .hashing import value_key

CHUNK_LINES = 20_000
# Row tuple as stored: (seq, value, normalized, key_hash, kind, included, verdict, result_json)
Row = tuple[int, str, str | None, bytes, str, bool, str | None, str | None]


@dataclass(frozen=True)
class ParseSpec:
    record_type: str
    target_country: str
    keep_wrong: bool
    secret: bytes


def iter_chunks(path: Path, size: int = CHUNK_LINES) -> Iterator[list[tuple[int, str]]]:
    """(seq, trimmed value) for every non-blank line, ``size`` at a time."""
    with path.open(encoding="utf-8", newline=None) as handle:
        entries = ((i, s) for i, s in enumerate(line.strip() for line in handle) if s)
        while chunk := list(islice(entries, size)):
            yield chunk


def classify(spec: ParseSpec, chunk: list[tuple[int, str]]) -> list[Row]:
    if spec.record_type == "email":
        normalize = normalize_email
    else:
        normalize = partial(normalize_phone, region=spec.target_country)
    wrong_json = json.dumps(syntax_error_result(spec.record_type).to_dict())  # type: ignore[arg-type]
    secret, keep_wrong = spec.secret, spec.keep_wrong
    rows: list[Row] = []
    append = rows.append
    for seq, value in chunk:
        norm = normalize(value)
        if norm is None:
            append(
                (
                    seq,
                    value,
                    None,
                    value_key(secret, value),
                    "wrong",
                    keep_wrong,
                    "wrong",
                    wrong_json,
                )
            )
        else:
            stored = None if norm == value else norm  # most addresses are already canonical
            append((seq, value, stored, value_key(secret, norm), "valid", True, None, None))
    return rows


_POOL: ProcessPoolExecutor | None = None


def _pool(workers: int) -> Executor:
    global _POOL
    if _POOL is None:
        # forkserver: forking a process that runs an event loop and threads is unsafe.
        _POOL = ProcessPoolExecutor(workers, mp_context=get_context("forkserver"))
    return _POOL


def classified_chunks(spec: ParseSpec, path: Path, workers: int = 0) -> Iterator[list[Row]]:
    """Classified rows in file order; phones use a process pool when the file is large."""
    chunks = iter_chunks(path)
    workers = workers or os.cpu_count() or 1
    use_pool = spec.record_type == "phone" and workers > 1 and path.stat().st_size > 256_000
    if not use_pool:
        for chunk in chunks:
            yield classify(spec, chunk)
        return
    pool = _pool(workers)
    pending = []
    # Keep a bounded number of chunks in flight so memory stays flat on huge files.
    for chunk in chunks:
        pending.append(pool.submit(classify, spec, chunk))
        if len(pending) >= workers * 2:
            yield pending.pop(0).result()
    for future in pending:
        yield future.result()


def shutdown_pool() -> None:
    global _POOL
    if _POOL is not None:
        _POOL.shutdown(cancel_futures=True)
        _POOL = None
