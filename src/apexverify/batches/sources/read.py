"""The raw rows of a table upload, in file order, header row included: CSV streamed with the
csv module, workbooks (first sheet) streamed by ``xlsx_stream`` / ``ods_stream``.

Limits against hostile files: a CSV field over the csv module's 128 KiB limit and a zip
whose entries inflate past :data:`MAX_INFLATED_BYTES` or more than :data:`MAX_RATIO` times
their compressed size (a zip bomb) are a :class:`ParseError` before anything is kept. The
workbook readers hold one chunk of XML and one row at a time (constant memory, about 60 MB
for a million rows: docs/benchmarks.md); they run in a child process under a memory limit
(``workbook_process.py``), which keeps their CPU-bound parse off the server's event loop.
"""

from __future__ import annotations

import csv
import io
import logging
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from ...errors import ParseError
from .workbook_process import PARSE_ERROR

log = logging.getLogger(__name__)

MAX_INFLATED_BYTES = 2 * 1024**3
MAX_RATIO = 100
# The csv module's default field limit (131,072 characters): a CSV field past it is refused.
FIELD_LIMIT = csv.field_size_limit()


def csv_rows(path: Path, delimiter: str, skip_lines: int = 0) -> Iterator[list[str]]:
    """Every row of a UTF-8 CSV (BOM or not, any line ends, quoted fields), streamed."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        for _ in range(skip_lines):
            handle.readline()
        reader = csv.reader(handle, delimiter=delimiter, quotechar='"', doublequote=True)
        try:
            yield from reader
        except csv.Error as exc:
            raise ParseError(
                f"Row {reader.line_num} of the file cannot be read as CSV ({exc}); "
                f"fields are limited to {FIELD_LIMIT} characters."
            ) from None


def check_archive(path: Path) -> None:
    """Refuse a zip that would inflate too far (declared sizes: zipfile never inflates an
    entry past its declared size, and checks its CRC at the end)."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ParseError(f"The workbook is a damaged zip archive ({exc}).") from None
    total = sum(entry.file_size for entry in entries)
    if total > MAX_INFLATED_BYTES:
        raise ParseError(
            f"The workbook inflates to {total} bytes, over the limit of {MAX_INFLATED_BYTES}."
        )
    for entry in entries:
        if entry.file_size > 1024 * 1024 and entry.file_size > MAX_RATIO * max(
            entry.compress_size, 1
        ):
            raise ParseError(
                f"The workbook entry {entry.filename!r} inflates more than {MAX_RATIO} times "
                "its size: refused as a possible zip bomb."
            )


def workbook_rows(
    path: Path, fmt: str = "xlsx", sheet: list[str] | None = None
) -> Iterator[list[str]]:
    """The rows of the first sheet of an ``xlsx`` or ``ods`` workbook as cell texts (``123``
    for a whole number), read by a child process (``workbook_process``) and streamed from
    its output; the sheet's name is appended to ``sheet`` when given."""
    check_archive(path)
    command = [sys.executable, "-m", f"{__package__}.workbook_process", fmt, str(path)]
    # stderr to a file: a pipe the parent does not drain could fill and block the child.
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors
        )
        assert child.stdout is not None
        try:
            reader = csv.reader(io.TextIOWrapper(child.stdout, encoding="utf-8", newline=""))
            name = next(reader, None)
            if name is not None:
                if sheet is not None:
                    sheet.append(name[0] if name else "")
                yield from reader
            code = child.wait()
        finally:
            if child.poll() is None:  # the reader stopped early (or failed): end the child
                child.kill()
                child.wait()
            child.stdout.close()
        errors.seek(0)
        error = errors.read(64 * 1024).decode("utf-8", "replace").strip()
    if code != 0:
        raise _unreadable(code, error)


def _unreadable(code: int, error: str) -> ParseError:
    log.info("unreadable workbook: exit %s: %s", code, error[-500:])
    if code == PARSE_ERROR and error:
        return ParseError(error.splitlines()[-1][:500])  # the reader's own message
    if code < 0 or "memory allocation" in error or "MemoryError" in error:
        # Killed by a signal, or out of its address space: the child's memory limit.
        return ParseError(
            "The workbook cannot be read: its sheet is too large to read "
            "(it needs more memory than allowed)."
        )
    last = error.splitlines()[-1] if error else f"exit status {code}"
    return ParseError(f"The workbook cannot be read ({last[:200]}).")
