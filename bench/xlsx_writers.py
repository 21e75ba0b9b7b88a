"""XLSX writers compared on the same rows: our ``export.xlsx_export.write_xlsx`` (XlsxWriter in
``constant_memory`` mode) and rustpy-xlsxwriter (a Rust writer with a Python API), each in a
fresh process so its peak RSS is its own.

    .venv/bin/python bench/xlsx_writers.py --rows 1000000

Rows are email results with the engine's extra fields, as a finished batch exports them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "src")]

from _common import machine  # noqa: E402


def rows(n: int) -> Iterator[tuple[str, dict[str, Any]]]:
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
                "smtp_reply": "OK" if valid else "No such user",
                "catch_all": False,
            },
        )


def ours(path: Path, n: int) -> None:
    from apexverify.export.xlsx_export import write_xlsx

    write_xlsx(path, "email", [("Batch", "bench")], rows(n))


def rustpy(path: Path, n: int) -> None:
    import rustpy_xlsxwriter

    records = ({"email": value, **result} for value, result in rows(n))
    rustpy_xlsxwriter.FastExcel(str(path)).sheet("Results", records).save()


def _child(name: str, n: int, out: Any) -> None:
    path = Path(tempfile.mkdtemp()) / f"{name}.xlsx"
    start = time.perf_counter()
    {"xlsxwriter (ours)": ours, "rustpy-xlsxwriter": rustpy}[name](path, n)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.send(
        {
            "writer": name,
            "rows": n,
            "seconds": round(seconds, 2),
            "rows_per_s": round(n / seconds),
            "peak_rss_mb": round(peak),
            "file_mb": round(path.stat().st_size / 2**20, 1),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    results = []
    for name in ("xlsxwriter (ours)", "rustpy-xlsxwriter"):
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
