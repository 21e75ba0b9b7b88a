"""The JSON export of a big finished batch alone: over real HTTP, and in process under cProfile.

    .venv/bin/python bench/json_export.py --rows 200000
    .venv/bin/python bench/json_export.py --rows 1000000 --data-dir /tmp/je  # keep/reuse it
    .venv/bin/python bench/json_export.py --rows 200000 --data-dir /tmp/je --profile

Builds a finished sandbox batch through the API once (the list of ``bench/lifecycle.py``: a
live embedded server, SQLite), then downloads ``GET /v1/batch/{uuid}/export?format=json``
``--repeat`` times (median and best rows/s, the rows being the file's minus the duplicates,
as ``bench/lifecycle.py`` counts them) and reports the CPU time of the server process during
the downloads (the figure to compare on a loaded machine). ``--profile`` then stops the
server and runs the same export generator in this process under cProfile (top functions by
cumulative time). Target (issue #12): 200,000 rows/s at 1,000,000 rows.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "src")]

from tests.support.server import server_env, start_server  # noqa: E402

from _common import machine  # noqa: E402
from lifecycle import download, email_file, upload, wait_for  # noqa: E402

TARGET = 200_000


def build(data_dir: Path, rows: int) -> dict[str, object]:
    server = start_server(data_dir / "server")
    try:
        key, _ = server.create_account(sandbox=True, email_credits=rows * 2)
        listing = data_dir / "list.txt"
        email_file(listing, rows)
        client = httpx.Client(base_url=server.base_url, headers={"X-API-Key": key}, timeout=3600)
        batch_uuid = upload(client, listing, "json export bench")
        ready = wait_for(client, batch_uuid, "ready_for_verification")
        client.post(f"/v1/batch/{batch_uuid}").raise_for_status()
        wait_for(client, batch_uuid, "verification_done")
    finally:
        server.stop()
    exported = rows - int(ready["found_content"]["duplicate_email"])
    return {"key": key, "batch_uuid": batch_uuid, "rows": rows, "exported": exported}


def over_http(data_dir: Path, saved: dict[str, object], repeat: int) -> dict[str, object]:
    server = start_server(data_dir / "server")
    try:
        assert server.process is not None
        proc = psutil.Process(server.process.pid)
        client = httpx.Client(
            base_url=server.base_url, headers={"X-API-Key": str(saved["key"])}, timeout=3600
        )
        exported = int(str(saved["exported"]))
        seconds, cpu, size = [], [], 0
        for _ in range(repeat):
            before = proc.cpu_times()
            start = time.perf_counter()
            size = download(client, str(saved["batch_uuid"]), "json", data_dir / "x.json")
            seconds.append(time.perf_counter() - start)
            after = proc.cpu_times()
            cpu.append(after.user + after.system - before.user - before.system)
        best = min(seconds)
        return {
            "exported_rows": exported,
            "bytes": size,
            "median_s": round(statistics.median(seconds), 3),
            "best_s": round(best, 3),
            "median_rows_per_s": round(exported / statistics.median(seconds)),
            "best_rows_per_s": round(exported / best),
            "server_cpu_s_median": round(statistics.median(cpu), 3),
            "target_rows_per_s": TARGET,
        }
    finally:
        server.stop()


def profile(data_dir: Path, saved: dict[str, object]) -> None:
    """The export generator in this process (no HTTP), under cProfile."""
    from apexverify.batches import exports
    from apexverify.batches.context import Services
    from apexverify.batches.repository import batches as batch_rows
    from apexverify.settings import Settings
    from apexverify.store.db import Store

    settings = Settings.from_env(server_env(data_dir / "server"))
    store = Store(settings.database_url)
    with store.read() as session:
        batch = batch_rows.by_uuid(session, str(saved["batch_uuid"]))
        assert batch is not None
        session.expunge(batch)
    # Only the store is used by the JSON export.
    services = Services.__new__(Services)
    services.store = store
    started = time.process_time()
    size = sum(
        map(len, exports.json_chunks(services, batch, details=True, include_statistics=True))
    )
    plain = time.process_time() - started
    print(json.dumps({"in_process_cpu_s": round(plain, 3), "bytes": size}), flush=True)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in exports.json_chunks(services, batch, details=True, include_statistics=True):
        pass
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(18)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, help="server data (kept; reused if present)")
    parser.add_argument("--profile", action="store_true", help="cProfile in process afterwards")
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-json-export-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    state = data_dir / "bench.json"
    if state.exists():
        saved = json.loads(state.read_text())
    else:
        start = time.perf_counter()
        saved = build(data_dir, args.rows)
        print(f"built {args.rows:,} rows in {time.perf_counter() - start:.0f} s", flush=True)
        state.write_text(json.dumps(saved))
    print(machine(), "| load average", os.getloadavg(), flush=True)
    print(json.dumps(over_http(data_dir, saved, args.repeat)), flush=True)
    if args.profile:
        profile(data_dir, saved)


if __name__ == "__main__":
    main()
