"""XLSX writers compared on the same rows, each in a fresh process so its peak RSS is its own:

- ``ours``: ``export.xlsx_export.write_xlsx`` on rows it writes with rustpy-xlsxwriter
  (the first pass, the spool, then rustpy);
- ``fallback``: ``write_xlsx`` on the same rows but one hostile SMTP reply
  (``=HYPERLINK(...)``) in the middle, so the ``smtp_reply`` column mixes formula-like text
  with other values and it falls back to XlsxWriter ``constant_memory`` (a quote prefix per
  cell, as the export was written before rustpy);
- ``ceiling``: rustpy-xlsxwriter alone on a generator of the same dicts: no summary, no
  conversion, no quote prefix, no first pass.

    .venv/bin/python bench/xlsx_writers.py --rows 1000000
    .venv/bin/python bench/xlsx_writers.py --rows 200000 --writers ours,ceiling

Rows are email results with the engine's extra fields, as a finished batch exports them,
fed by a generator (as the export reads them from the database). Seconds are wall time on
the machine as it is (the load average is printed); ``cpu_s`` is the process's CPU time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "src")]

from _common import machine  # noqa: E402

HOSTILE_REPLY = '=HYPERLINK("http://evil.example","click")'


def rows(n: int, hostile_at: int | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    for i in range(n):
        valid = i % 10 != 0
        yield (
            f"user{i}@example{i % 1000}.com",
            {
                "valid": valid,
                "wrong": not valid,
                "unknown": False,
                "quality": "good" if valid else "bad",
                "result": "ok" if valid else "invalid",
                "is_syntax_error": False,
                "is_free": False,
                "is_role": False,
                "is_disposable": False,
                "is_catch_all": False,
                "did_you_mean": None,
                "evidence": "smtp_accepted" if valid else "smtp_rejected",
                "reason": "accepted_email" if valid else "rejected_email",
                "mx_host": f"mx.example{i % 1000}.com",
                "mx_provider": None,
                "smtp_code": 250 if valid else 550,
                "smtp_enhanced_code": "2.1.5" if valid else "5.1.1",
                "smtp_reply": HOSTILE_REPLY
                if i == hostile_at
                else ("OK" if valid else "No such user"),
                "catch_all": False,
            },
        )


SUMMARY = [("Batch", "bench"), ("Type", "email"), ("valid_email", 900_000)]


def ours_rustpy(path: Path, n: int) -> None:
    from apexverify.export.xlsx_export import write_xlsx

    write_xlsx(path, "email", SUMMARY, rows(n))


def ours_xlsxwriter(path: Path, n: int) -> None:
    from apexverify.export.xlsx_export import write_xlsx

    write_xlsx(path, "email", SUMMARY, rows(n, hostile_at=n // 2))


def rustpy_alone(path: Path, n: int) -> None:
    import rustpy_xlsxwriter

    records = ({"email": value, **result} for value, result in rows(n))
    rustpy_xlsxwriter.FastExcel(str(path)).sheet("Results", records).save()


WRITERS: dict[str, tuple[str, Callable[[Path, int], None]]] = {
    "ours": ("write_xlsx, rustpy-xlsxwriter", ours_rustpy),
    "fallback": ("write_xlsx, XlsxWriter constant_memory", ours_xlsxwriter),
    "ceiling": ("rustpy-xlsxwriter alone", rustpy_alone),
}


def _child(name: str, n: int, out: Any) -> None:
    import logging

    logging.basicConfig(level=logging.INFO)  # write_xlsx logs when it falls back to XlsxWriter
    import rustpy_xlsxwriter  # noqa: F401 - imported before the clock starts

    import apexverify.export.xlsx_export  # noqa: F401

    label, write = WRITERS[name]
    path = Path(tempfile.mkdtemp()) / f"{name}.xlsx"
    start, cpu = time.perf_counter(), time.process_time()
    write(path, n)
    seconds, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.send(
        {
            "writer": name,
            "what": label,
            "rows": n,
            "seconds": round(seconds, 2),
            "rows_per_s": round(n / seconds),
            "cpu_s": round(cpu_s, 2),
            "peak_rss_mb": round(peak),
            "file_mb": round(path.stat().st_size / 2**20, 1),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
    )
    path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--writers", default=",".join(WRITERS), help="among: " + ",".join(WRITERS))
    args = parser.parse_args()
    names = args.writers.split(",")
    unknown = [name for name in names if name not in WRITERS]
    if unknown:
        parser.error(f"unknown writers {unknown}")
    print(json.dumps({"machine": machine(), "load_avg": os.getloadavg()}), flush=True)
    results = []
    for name in names:
        parent, child = multiprocessing.Pipe()
        proc = multiprocessing.get_context("spawn").Process(
            target=_child, args=(name, args.rows, child)
        )
        proc.start()
        results.append(parent.recv())
        proc.join()
        print(json.dumps(results[-1]), flush=True)
    print(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
