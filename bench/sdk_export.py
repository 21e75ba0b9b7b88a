"""The SDK caller's memory while it downloads a big export (issue #18).

    .venv/bin/python bench/sdk_export.py --rows 200000

Starts a live server (its own process, sandbox account), verifies a ``--rows`` list with
``Client.verify_file``, then runs each download in a fresh Python process of its own (so one
measurement's garbage does not inflate the next) and reports, for that process, its RSS just
before the download, the peak during it (sampled every 50 ms by a thread, and the kernel's
``ru_maxrss`` high-water mark), the growth, the bytes and the seconds:

- ``export_to`` JSON and XLSX (streamed to disk: constant memory is the target, < 50 MB);
- ``iter_results`` (typed rows parsed as the JSON streams in, counted and dropped);
- ``export()`` JSON (the whole body in memory, for comparison).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "src")]

from _common import PeakRss, machine  # noqa: E402

MODES = ("export_to_json", "export_to_xlsx", "iter_results", "export_json_in_memory")


def child(mode: str, url: str, key: str, batch_uuid: str, out: Path) -> dict[str, Any]:
    """One download in this (fresh) process; its memory figures."""
    import psutil

    from apexverify.client import Client

    with Client(key, url, timeout=600) as client:
        client.credits()  # connection, imports and TLS-free warm-up before the baseline
        me = psutil.Process(os.getpid())
        before = me.memory_info().rss
        started = time.perf_counter()
        with PeakRss(os.getpid()) as peak:
            if mode == "export_to_json":
                size = client.export_to(batch_uuid, out / "r.json")
            elif mode == "export_to_xlsx":
                size = client.export_to(batch_uuid, out / "r.xlsx")
            elif mode == "iter_results":
                size = sum(1 for _ in client.iter_results(batch_uuid))
            else:
                body = client.export(batch_uuid, "json")
                size = len(body)
        seconds = time.perf_counter() - started
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    high = max(peak.peak, maxrss)
    return {
        "mode": mode,
        "rss_before_mb": round(before / 2**20, 1),
        "rss_peak_mb": round(high / 2**20, 1),
        "growth_mb": round((high - before) / 2**20, 1),
        "bytes_or_rows": size,
        "seconds": round(seconds, 2),
    }


def build_batch(url: str, key: str, rows: int, work: Path) -> str:
    from apexverify.client import Client

    source = work / "list.txt"
    with source.open("w") as handle:
        for i in range(rows):
            handle.write(f"user{i}@example{i % 1000}.com\n")
    with Client(key, url, timeout=600) as client:
        result = client.verify_file(source, initial_delay=1.0, max_delay=5.0)
    return result.batch_uuid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--child", nargs=5, metavar=("MODE", "URL", "KEY", "UUID", "DIR"))
    args = parser.parse_args()
    if args.child:
        mode, url, key, batch_uuid, out = args.child
        print(json.dumps(child(mode, url, key, batch_uuid, Path(out))))
        return
    from tests.support.server import start_server

    report: dict[str, Any] = {"machine": machine(), "rows": args.rows, "runs": []}
    with tempfile.TemporaryDirectory(prefix="apexverify-sdk-export-") as tmp:
        work = Path(tmp)
        server = start_server(work / "server")
        try:
            key, _ = server.create_account(sandbox=True, email_credits=args.rows * 2)
            started = time.perf_counter()
            batch_uuid = build_batch(server.base_url, key, args.rows, work)
            report["build_seconds"] = round(time.perf_counter() - started, 1)
            for mode in MODES:
                out = work / mode
                out.mkdir()
                done = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        mode,
                        server.base_url,
                        key,
                        batch_uuid,
                        str(out),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                report["runs"].append(json.loads(done.stdout.strip().splitlines()[-1]))
        finally:
            server.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
