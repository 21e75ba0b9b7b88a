"""Reads the first sheet of a workbook in a child process: the streaming readers
(``xlsx_stream``, ``ods_stream``) parse its XML here, not in a server or worker process.

Why a child, now that the readers hold one chunk of XML and one row at a time: the parse of
a big sheet is CPU-bound Python (about 10 s of CPU for a million rows), which here runs
beside the server's event loop, not under its GIL; and as defence in depth, the child runs
under an address-space limit (:data:`MEMORY_LIMIT`), so a reader bug or a hostile file that
finds a way to grow memory ends this process only, and the parent reports a ``ParseError``.
(Before the streaming readers, python-calamine built the sheet's whole grid here: a 5 KB
XLSX with a cell in XFD1048576 asked it for 512 GB and aborted the process.)

The child writes the sheet's name, then one CSV row per sheet row, to its stdout, which the
parent reads as a stream. A :class:`ParseError` is written to stderr as its message alone,
with exit status :data:`PARSE_ERROR`, for the parent to pass on as it is.

Run as ``python -m apexverify.batches.sources.workbook_process FORMAT PATH``.
"""

from __future__ import annotations

import csv
import io
import resource
import sys

# Bytes of address space for the child. The readers need tens of MB; the margin is for the
# shared strings' files, which are mapped (their size counts here), up to the 2 GiB that
# ``read.check_archive`` lets a workbook inflate to.
MEMORY_LIMIT = 3 * 1024**3
PARSE_ERROR = 5


def main(fmt: str, path: str) -> int:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    from ...errors import ParseError
    from . import ods_stream, xlsx_stream

    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="", write_through=False)
    writer = csv.writer(out, lineterminator="\n")
    reader = ods_stream.sheet_rows if fmt == "ods" else xlsx_stream.sheet_rows
    sheet: list[str] = []
    try:
        rows = reader(path, sheet)
        first = next(rows, None)
        writer.writerow(sheet[:1] or [""])
        if first is not None:
            writer.writerow(first)
            writer.writerows(rows)
    except ParseError as exc:
        out.flush()
        print(exc.message, file=sys.stderr)
        return PARSE_ERROR
    out.flush()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1], sys.argv[2]))
    except MemoryError:
        print("The workbook needs more memory than allowed to read.", file=sys.stderr)
        sys.exit(4)
    except BrokenPipeError:  # the parent stopped reading (it had what it needed)
        sys.exit(0)
    except Exception as exc:  # a reader bug: the parent reports it as unreadable
        print(f"{type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
        sys.exit(2)
