"""Scale-out parse benchmark: one large upload parsed by one job vs. by chunk jobs on 1, 2
and 4 worker processes.

    .venv/bin/python bench/scaleout_parse.py [--lines 1000000] [--chunk-mib 8]

Each run gets a fresh PostgreSQL database, one API process and N ``apexverify worker``
processes (started and idle before the upload). The clock runs from the start of the upload
to ``ready_for_verification``: upload, split, classification, COPY of the rows, whole-batch
dedupe, caches and pricing. The file is email addresses with 2% duplicates and 1% malformed
lines. "one job" sets the chunk threshold above the file size: the worker parses it alone
(with its process pool), as before chunk jobs existed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.scaleout import cluster, machine


def contacts(lines: int) -> bytes:
    rows = []
    for i in range(lines):
        if i % 100 == 0:
            rows.append(f"broken-{i}@")
        elif i % 50 == 1:
            rows.append(rows[i // 2].upper())  # the same address as an earlier line
        else:
            rows.append(f"user{i}@example{i % 1000}.com")
    return ("\n".join(rows) + "\n").encode()


def run(body: bytes, workers: int, chunk_bytes: int) -> tuple[float, dict[str, int]]:
    settings = {"APEXVERIFY_PARSE_CHUNK_BYTES": str(chunk_bytes)}
    with cluster(workers, 2, **settings) as (server, api_key):
        client = httpx.Client(base_url=server.base_url, headers={"X-API-Key": api_key}, timeout=300)
        time.sleep(3)  # workers connected, parse pools warm
        started = time.perf_counter()
        files = {"file": ("contacts.txt", body, "text/plain")}
        data = {"name": "bench", "type": "email", "target_country": "US"}
        batch_uuid = client.post("/v1/batch", files=files, data=data).json()["batch_uuid"]
        while True:
            status = client.get(f"/v1/batch/{batch_uuid}").json()
            if status["status"] == "ready_for_verification":
                return time.perf_counter() - started, status["found_content"]
            if status["status"] == "internal_error":
                raise RuntimeError(status)
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--chunk-mib", type=float, default=8)
    args = parser.parse_args()
    body = contacts(args.lines)
    chunk = int(args.chunk_mib * 1024 * 1024)
    print(f"machine: {machine()}")
    print(
        f"upload: {args.lines} email lines, {len(body) / 2**20:.1f} MiB; "
        f"chunk jobs of {args.chunk_mib:g} MiB ({-(-len(body) // chunk)} ranges)"
    )
    print("| mode | workers | seconds to ready | lines/s | found_content |")
    print("|---|---|---|---|---|")
    plans = [("one job", 1, len(body) + 1), ("chunk jobs", 1, chunk)]
    plans += [("chunk jobs", 2, chunk), ("chunk jobs", 4, chunk)]
    for mode, workers, chunk_bytes in plans:
        seconds, found = run(body, workers, chunk_bytes)
        print(
            f"| {mode} | {workers} | {seconds:.2f} | {args.lines / seconds:,.0f} | {found} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
