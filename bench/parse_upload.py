"""Upload + parse benchmark: a 1,000,000-line email file and a 1,000,000-line phone file,
from the POST /v1/batch to ``ready_for_verification``, against a live server on loopback.

    .venv/bin/python bench/parse_upload.py [--lines 1000000] [--kinds email] [--repeat 3]

Prints rows/s end to end, the CPU seconds the server and its parse workers spent (the figure
to compare when other work shares the cores), the load average, and the server's peak RSS
(the server and its parse workers, sampled every 50 ms with psutil). In the same run,
email-validator's syntax check alone on a sample (the issue's reference figure) for
comparison.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.server import LiveServer, start_server

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PeakRss


def email_lines(n: int) -> list[str]:
    rng = random.Random(1)
    domains = [f"company{i}.com" for i in range(5000)] + ["gmail.com", "yahoo.com", "outlook.com"]
    lines = []
    for i in range(n):
        r = rng.random()
        if r < 0.03:
            lines.append(f"not-an-email-{i}")
        elif r < 0.06 and lines:
            lines.append(lines[rng.randrange(len(lines))].upper())
        else:
            lines.append(f"first{i}.last{i % 977}@{rng.choice(domains)}")
    return lines


def phone_lines(n: int) -> list[str]:
    rng = random.Random(2)
    lines = []
    for i in range(n):
        r = rng.random()
        if r < 0.4:
            lines.append(
                f"+1 (415) 555-{i % 10000:04d}"
                if r < 0.1
                else f"+1415{rng.randrange(2000000, 9999999)}"
            )
        elif r < 0.6:
            lines.append(f"+447{rng.randrange(100000000, 999999999)}")
        elif r < 0.8:
            lines.append(f"415{rng.randrange(2000000, 9999999)}")
        elif r < 0.97:
            lines.append(f"+659{rng.randrange(1000000, 9999999)}")
        else:
            lines.append(f"12-{i}")
    return lines


def run_one(server: LiveServer, key: str, kind: str, path: Path, lines: int) -> dict:
    client = httpx.Client(base_url=server.base_url, headers={"X-API-Key": key}, timeout=600)
    assert server.process is not None
    tree = psutil.Process(server.process.pid)
    procs = [tree, *tree.children(recursive=True)]  # the parse pool is warm by now
    cpu_before = _cpu(procs)
    with PeakRss(server.process.pid) as rss:
        start = time.perf_counter()
        with path.open("rb") as handle:
            response = client.post(
                "/v1/batch",
                files={"file": ("list.txt", handle, "text/plain")},
                data={"name": f"bench {kind}", "type": kind, "target_country": "US"},
            )
        response.raise_for_status()
        batch_uuid = response.json()["batch_uuid"]
        uploaded = time.perf_counter() - start
        while True:
            body = client.get(f"/v1/batch/{batch_uuid}").json()
            if body["status"] == "ready_for_verification":
                break
            if body["status"] == "internal_error":
                raise RuntimeError(body)
            time.sleep(0.02)
        elapsed = time.perf_counter() - start
    cpu = _cpu(procs) - cpu_before
    load = os.getloadavg()[0]
    time.sleep(0.5)  # the parse logs its phase timings just after publishing the status
    return {
        "kind": kind,
        "lines": lines,
        "seconds": elapsed,
        "upload_seconds": uploaded,
        "rows_per_s": lines / elapsed,
        "cpu_seconds": cpu,
        "load_average": load,
        "peak_rss_mb": rss.peak / 2**20,
        "found_content": body["found_content"],
        "phases": [
            line.split(": ", 2)[-1]
            for line in server.log_tail(100_000).splitlines()
            if f"parsed {batch_uuid}" in line
        ],
    }


def _cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def email_validator_rate(lines: list[str], sample: int = 50_000) -> float:
    from email_validator import EmailNotValidError, validate_email

    subset = lines[:sample]
    start = time.perf_counter()
    for line in subset:
        with contextlib.suppress(EmailNotValidError):
            validate_email(line, check_deliverability=False)
    return len(subset) / (time.perf_counter() - start)


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return (
        f"{psutil.cpu_count()} cores ({cpu}), "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, Python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument(
        "--parse-workers", default="0", help="APEXVERIFY_PARSE_WORKERS (1 = no process pool)"
    )
    parser.add_argument("--kinds", default="email,phone", help="comma-separated: email, phone")
    parser.add_argument("--repeat", type=int, default=1, help="uploads of each file")
    args = parser.parse_args()
    kinds = [k for k in ("email", "phone") if k in args.kinds.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        emails = email_lines(args.lines)
        (tmp_path / "emails.txt").write_text("\n".join(emails) + "\n")
        if "phone" in kinds:
            (tmp_path / "phones.txt").write_text("\n".join(phone_lines(args.lines)) + "\n")
        server = start_server(
            tmp_path / "server",
            APEXVERIFY_MAX_UPLOAD_BYTES=str(2**31),
            APEXVERIFY_PARSE_WORKERS=args.parse_workers,
        )
        try:
            key = server.create_account()[0]
            print(f"machine: {machine()}; parse workers setting: {args.parse_workers}")
            time.sleep(3)  # the parse workers start in the background
            for kind in kinds:
                for _ in range(args.repeat):
                    result = run_one(server, key, kind, tmp_path / f"{kind}s.txt", args.lines)
                    print(
                        f"{kind}: {result['lines']:,} lines -> ready in {result['seconds']:.2f}s "
                        f"(upload {result['upload_seconds']:.2f}s): "
                        f"{result['rows_per_s']:,.0f} rows/s, server CPU "
                        f"{result['cpu_seconds']:.2f}s, load average "
                        f"{result['load_average']:.2f}, peak RSS {result['peak_rss_mb']:.0f} MB,"
                        f" {result['found_content']}; {'; '.join(result['phases'])}",
                        flush=True,
                    )
            rate = email_validator_rate(emails)
            print(f"peer: email-validator syntax check alone: {rate:,.0f} addresses/s")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
