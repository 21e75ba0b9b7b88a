"""Reads the first sheet of a workbook in a child process, so that python-calamine never runs
in a server or worker process.

Why: calamine builds a dense grid of the sheet's used range before the first row is
returned. A 5 KB XLSX with one cell in A1 and one in XFD1048576 asks for 512 GB, and a
failed allocation in Rust aborts the whole process (measured: SIGABRT). Here only this child
dies, under an address-space limit (:data:`MEMORY_LIMIT`), and the parent reports a
``ParseError``. The child writes the sheet's name, then one CSV row per sheet row, to its
stdout, which the parent reads as a stream: the parent's memory stays constant.

Run as ``python -m apexverify.batches.sources.workbook_process PATH``.
"""

from __future__ import annotations

import csv
import io
import resource
import sys

MEMORY_LIMIT = 3 * 1024**3  # bytes of address space for the child


def main(path: str) -> int:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    import python_calamine

    from .cells import cell_text

    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="", write_through=False)
    writer = csv.writer(out, lineterminator="\n")
    with python_calamine.CalamineWorkbook.from_path(path) as workbook:
        if not workbook.sheet_names:
            print("The workbook has no sheet.", file=sys.stderr)
            return 3
        sheet = workbook.get_sheet_by_index(0)
        writer.writerow([sheet.name])
        for row in sheet.iter_rows():
            writer.writerow([cell_text(value).replace("\x00", "") for value in row])
    out.flush()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1]))
    except MemoryError:
        print("The workbook needs more memory than allowed to read.", file=sys.stderr)
        sys.exit(4)
    except Exception as exc:  # calamine's errors have no common base (Calamine, Zip, Xml...)
        print(f"{type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
        sys.exit(2)
