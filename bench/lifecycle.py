"""The whole lifecycle of one big batch, phase by phase, against a live embedded server.

    .venv/bin/python bench/lifecycle.py --rows 1000000            # sandbox account, no network
    .venv/bin/python bench/lifecycle.py --rows 1000000 --load     # + wrk on the status endpoint
    .venv/bin/python bench/lifecycle.py --rows 1000000 --load-only  # the wrk run alone
    .venv/bin/python bench/lifecycle.py --lab 100000              # real engine, loopback SMTP lab
    .venv/bin/python bench/lifecycle.py --rows 1000000 --load-only --no-job-process  # as before

Phases: upload (POST /v1/batch), parse (to ``ready_for_verification``), launch, verify (to
``verification_done``), export JSON, export XLSX; for each the seconds, rows/s and the peak
RSS of the server and its workers (sampled every 50 ms). ``--load`` then runs ``wrk`` against
``GET /v1/batch/{uuid}`` at 10 and 50 connections, idle and then while the same server
parses another ``--rows`` file (a fresh one per run) and verifies a third batch; each run
reports requests/s, p50/p90/p99, the load average and the server's CPU per answer.
``--lab N`` verifies N addresses through the loopback SMTP lab of ``bench/email_smtp.py``
(20 ms replies) and reports the runner's throughput next to one
``verify_many`` call on the whole list, in the same run: that call, and then calls on what it
handed back as retries until every address has its verdict (the first call alone verifies
about four fifths of the list: the rest waited past its ``pace_wait`` for a slot).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "src")]

from tests.support.server import LiveServer, start_server  # noqa: E402

from _common import PeakRss, machine  # noqa: E402

TARGETS = {
    "parse": 200_000,
    "verify": 50_000,
    "export_json": 200_000,
    "export_xlsx": 40_000,
}


def email_file(path: Path, rows: int, seed: int = 7) -> None:
    """A realistic list: 1,000 domains, 1% repeats (half of them case-only), 1% malformed."""
    rng = random.Random(seed)
    with path.open("w") as out:
        for i in range(rows):
            r = rng.random()
            if r < 0.005 and i:
                j = rng.randrange(i)
                out.write(f"user{j}@example{j % 1000}.com\n")
            elif r < 0.01 and i:
                j = rng.randrange(i)
                out.write(f"User{j}@EXAMPLE{j % 1000}.com\n")
            elif r < 0.02:
                out.write(f"broken-{i}@\n")
            else:
                out.write(f"user{i}@example{i % 1000}.com\n")


class Phases:
    def __init__(self, server: LiveServer) -> None:
        assert server.process is not None
        self.pid = server.process.pid
        self.rows: list[dict[str, Any]] = []

    def measure(self, name: str, rows: int, work: Callable[[], Any]) -> Any:
        with PeakRss(self.pid) as rss:
            start = time.perf_counter()
            result = work()
            seconds = time.perf_counter() - start
        self.rows.append(
            {
                "phase": name,
                "rows": rows,
                "seconds": round(seconds, 2),
                "rows_per_s": round(rows / seconds) if seconds else None,
                "peak_rss_mb": round(rss.peak_mb),
                "target_rows_per_s": TARGETS.get(name),
            }
        )
        print(json.dumps(self.rows[-1]), flush=True)
        return result


def wait_for(client: httpx.Client, batch_uuid: str, status: str, timeout: float = 3600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/v1/batch/{batch_uuid}").json()
        if body["status"] == status:
            return body
        if body["status"] == "internal_error":
            raise RuntimeError(body)
        time.sleep(0.05)
    raise TimeoutError(f"{batch_uuid} never reached {status}")


def upload(client: httpx.Client, path: Path, name: str) -> str:
    with path.open("rb") as handle:
        response = client.post(
            "/v1/batch",
            files={"file": ("list.txt", handle, "text/plain")},
            data={"name": name, "type": "email", "target_country": "US"},
        )
    response.raise_for_status()
    return str(response.json()["batch_uuid"])


def download(client: httpx.Client, batch_uuid: str, fmt: str, dest: Path) -> int:
    with (
        client.stream("GET", f"/v1/batch/{batch_uuid}/export", params={"format": fmt}) as r,
        dest.open("wb") as out,
    ):
        r.raise_for_status()
        for chunk in r.iter_bytes():
            out.write(chunk)
    return dest.stat().st_size


def lifecycle(server: LiveServer, key: str, path: Path, rows: int, work: Path) -> dict[str, Any]:
    client = httpx.Client(base_url=server.base_url, headers={"X-API-Key": key}, timeout=3600)
    phases = Phases(server)
    holder: dict[str, Any] = {}

    def do_upload() -> None:
        holder["uuid"] = upload(client, path, "bench")

    phases.measure("upload", rows, do_upload)
    batch_uuid = holder["uuid"]
    ready = phases.measure(
        "parse", rows, lambda: wait_for(client, batch_uuid, "ready_for_verification")
    )
    valid = ready["found_content"]["valid_email"]
    phases.measure("launch", valid, lambda: client.post(f"/v1/batch/{batch_uuid}").json())
    phases.measure("verify", valid, lambda: wait_for(client, batch_uuid, "verification_done"))
    exported = rows - ready["found_content"]["duplicate_email"]
    phases.measure(
        "export_json", exported, lambda: download(client, batch_uuid, "json", work / "x.json")
    )
    phases.measure(
        "export_xlsx", exported, lambda: download(client, batch_uuid, "xlsx", work / "x.xlsx")
    )
    return {
        "batch_uuid": batch_uuid,
        "phases": phases.rows,
        "found_content": ready["found_content"],
    }


# The target is a rate: 1,000 requests/s with p99 <= 50 ms. wrk alone sends as fast
# as the server answers (the latency then includes queueing behind the other connections);
# a paced run has each of 25 connections wait 20 ms before each request (wrk's ``delay()``),
# about 1,100 requests/s offered while answers take a few ms.
PACED_CONNECTIONS, PACED_DELAY_MS = 25, 20


def wrk_run(
    url: str, key: str, seconds: int, connections: int, pid: int, delay_ms: int = 0
) -> dict[str, Any]:
    """``wrk --latency``: requests/s, the latency percentiles it prints, the load average
    before and after, and the server process's CPU per answer (all its threads: under load
    that includes the jobs' work). ``delay_ms``: each connection waits that long before each
    request (a paced run)."""
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True)
    if shutil.which("wrk") is None:
        return {"error": "wrk is not installed (apt-get install wrk)"}
    server = psutil.Process(pid)
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    with tempfile.TemporaryDirectory() as scripts:
        if delay_ms:
            script = Path(scripts, "paced.lua")
            script.write_text(f"function delay()\n  return {int(delay_ms)}\nend\n")
            command += ["-s", str(script)]
        cpu_before, load_before = sum(server.cpu_times()[:2]), os.getloadavg()[0]
        done = subprocess.run(
            [*command, "-H", f"X-Api-Key: {key}", url],
            capture_output=True,
            text=True,
            check=False,
        )
        cpu = sum(server.cpu_times()[:2]) - cpu_before
    out = done.stdout
    figures: dict[str, Any] = {"connections": connections, "raw": out}
    if delay_ms:
        figures["delay_ms"] = delay_ms
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        figures["requests_per_s"] = float(m.group(1))
    for pct in ("50%", "90%", "99%"):
        if m := re.search(rf"^\s+{pct}\s+([\d.]+)(us|ms|s)", out, re.MULTILINE):
            value = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
            figures[f"p{pct[:-1]}_ms"] = round(value, 2)
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        figures["non_2xx"] = int(m.group(1))
    if m := re.search(r"(\d+) requests in", out):
        figures["server_cpu_ms_per_request"] = round(cpu * 1000 / max(int(m.group(1)), 1), 3)
    figures["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return figures


LOAD_CONNECTIONS = (10, 50)


def _verified(client: httpx.Client, batch_uuid: str) -> int:
    body = client.get(f"/v1/batch/{batch_uuid}").json()
    return int(body.get("progress", {}).get("verified", 0))


def load_run(server: LiveServer, key: str, path: Path, status_uuid: str, seconds: int) -> dict:
    """wrk on the status endpoint, idle, then while the server parses ``path`` and verifies
    another batch. Each connection count gets its own fresh parse (the first run would
    otherwise have the whole parse to itself); the statuses at the end of each run say
    whether the parse and the verification were still going."""
    assert server.process is not None
    pid = server.process.pid
    client = httpx.Client(base_url=server.base_url, headers={"X-API-Key": key}, timeout=3600)
    url = f"{server.base_url}/v1/batch/{status_uuid}"
    runs = [(c, 0) for c in LOAD_CONNECTIONS] + [(PACED_CONNECTIONS, PACED_DELAY_MS)]
    report: dict[str, Any] = {
        "idle": [wrk_run(url, key, seconds, c, pid, delay) for c, delay in runs],
        "under_load": [],
    }
    # One batch to verify per run, parsed beforehand: a 1M sandbox verification takes about
    # 20 s, so one batch launched before all the runs would be done before the last one.
    to_verify = [upload(client, path, f"bench verify {i}") for i in range(len(runs))]
    for batch_uuid in to_verify:
        wait_for(client, batch_uuid, "ready_for_verification")
    for (connections, delay), verifying in zip(runs, to_verify, strict=True):
        client.post(f"/v1/batch/{verifying}")
        started = time.perf_counter()
        parsing = upload(client, path, "bench parse")
        verified_before = _verified(client, verifying)
        run = wrk_run(url, key, seconds, connections, pid, delay)
        run["at_end"] = {
            "parsing": client.get(f"/v1/batch/{parsing}").json()["status"],
            "verifying": client.get(f"/v1/batch/{verifying}").json()["status"],
            # Rows verified during the wrk run: the verification really ran beside the parse.
            "verified_during_run": _verified(client, verifying) - verified_before,
        }
        wait_for(client, parsing, "ready_for_verification")
        run["parse_seconds"] = round(time.perf_counter() - started, 1)
        report["under_load"].append(run)
        wait_for(client, verifying, "verification_done")
    return report


def _cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU of ``process`` and its children (living ones)."""
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        try:
            times = each.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def lab_run(rows: int, work: Path, tuning: dict[str, str]) -> dict[str, Any]:
    """The real email engine through the server against the loopback SMTP lab, and one
    ``verify_many`` call on the same list in this process, in the same run."""
    import email_smtp  # the lab of bench/email_smtp.py

    args = argparse.Namespace(max_connections=200, per_mx=5, rcpt_per_connection=50)
    config = email_smtp.LabConfig(domains=max(rows // 100, 1), ips=250, latency=0.020)
    parent, child = multiprocessing.Pipe()
    lab = multiprocessing.Process(target=email_smtp.run_lab, args=(config, child), daemon=True)
    lab.start()
    nameserver, port = parent.recv()
    addresses = email_smtp.make_addresses(rows, config.domains)
    path = work / "lab.txt"
    path.write_text("\n".join(addresses) + "\n")
    server = start_server(
        work / "lab-server",
        APEXVERIFY_DNS_NAMESERVERS=nameserver,
        APEXVERIFY_SMTP_PORT=str(port),
        APEXVERIFY_SMTP_ALLOW_PRIVATE_NETWORKS="true",
        APEXVERIFY_SMTP_HELO_NAME="bench.lab-example.com",
        APEXVERIFY_SMTP_MAIL_FROM="probe@lab-example.com",
        APEXVERIFY_SMTP_GREYLIST_RETRY_SECONDS="1",
        **tuning,
    )
    try:
        key, _ = server.create_account(sandbox=False, email_credits=rows * 2)
        client = httpx.Client(base_url=server.base_url, headers={"X-API-Key": key}, timeout=3600)
        batch_uuid = upload(client, path, "lab")
        wait_for(client, batch_uuid, "ready_for_verification")
        assert server.process is not None
        server_cpu = _cpu_seconds(psutil.Process(server.process.pid))
        lab_cpu = _cpu_seconds(psutil.Process(lab.pid))
        start = time.perf_counter()
        client.post(f"/v1/batch/{batch_uuid}")
        done = wait_for(client, batch_uuid, "verification_done")
        runner = time.perf_counter() - start
        server_cpu = _cpu_seconds(psutil.Process(server.process.pid)) - server_cpu
        lab_cpu_runner = _cpu_seconds(psutil.Process(lab.pid)) - lab_cpu
        parent.send("stats")
        lab_runner = parent.recv()
    finally:
        server.stop()
    settings = email_smtp.engine_settings(nameserver, port, args)
    own_cpu, lab_cpu = _cpu_seconds(psutil.Process()), _cpu_seconds(psutil.Process(lab.pid))
    # The whole list in one call, and what it hands back as retries (a fifth of the list:
    # domains that waited past the engine's pace_wait for a connection slot) called again
    # until every address has its verdict, as the runner does.
    completed = asyncio.run(email_smtp.run_engine_to_the_end(addresses, settings))
    whole = completed.seconds
    own_cpu = _cpu_seconds(psutil.Process()) - own_cpu
    lab_cpu = _cpu_seconds(psutil.Process(lab.pid)) - lab_cpu
    parent.send("stats")
    lab_one_call = parent.recv()
    parent.send("stop")
    lab.join(10)
    return {
        "rows": rows,
        "runner_seconds": round(runner, 2),
        "runner_rows_per_s": round(rows / runner),
        "one_call_seconds": round(whole, 2),
        "one_call_rows_per_s": round(rows / whole),
        "runner_share_of_one_call": round(whole / runner, 3),
        # CPU per address (user + system, ms): the server with its job process and parse
        # workers against this process's one call; and the lab's in each.
        "runner_cpu_ms_per_address": round(server_cpu * 1000 / rows, 3),
        "one_call_cpu_ms_per_address": round(own_cpu * 1000 / rows, 3),
        "lab_cpu_ms_per_address": [
            round(lab_cpu_runner * 1000 / rows, 3),
            round(lab_cpu * 1000 / rows, 3),
        ],
        # What the lab saw in each: SMTP connections and RCPT commands (the runner's count
        # starts after its upload's parse).
        "lab_seen": {"runner": lab_runner, "one_call": lab_one_call},
        "one_call": {
            "calls": completed.calls,
            "verdicts": completed.verdicts,
            # The first call alone: its seconds and the verdicts it gave (the rest came back
            # as retries); the figure earlier runs called "one call" was rows / those seconds.
            "first_call_seconds": round(completed.first_call_seconds, 2),
            "first_call_decided": completed.first_call_decided,
            "runner_share_of_first_call_decided_rate": round(
                (rows / runner) / (completed.first_call_decided / completed.first_call_seconds),
                3,
            ),
        },
        "stats": done["stats"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--load", action="store_true", help="wrk on the status endpoint")
    parser.add_argument("--load-seconds", type=int, default=10)
    parser.add_argument(
        "--load-only", action="store_true", help="skip the phases: a small batch to poll, then wrk"
    )
    parser.add_argument("--lab", type=int, default=0, help="addresses through the SMTP lab")
    parser.add_argument("--skip-lifecycle", action="store_true")
    parser.add_argument("--chunk-size", type=int, default=0, help="APEXVERIFY_VERIFY_CHUNK_SIZE")
    parser.add_argument(
        "--parallel-chunks", type=int, default=0, help="APEXVERIFY_VERIFY_PARALLEL_CHUNKS"
    )
    parser.add_argument(
        "--no-job-process",
        action="store_true",
        help="APEXVERIFY_JOB_PROCESS=false: jobs on the server's threads (the old way)",
    )
    args = parser.parse_args()
    tuning = {}
    if args.no_job_process:
        tuning["APEXVERIFY_JOB_PROCESS"] = "false"
    if args.chunk_size:
        tuning["APEXVERIFY_VERIFY_CHUNK_SIZE"] = str(args.chunk_size)
    if args.parallel_chunks:
        tuning["APEXVERIFY_VERIFY_PARALLEL_CHUNKS"] = str(args.parallel_chunks)
    report: dict[str, Any] = {"machine": machine(), "settings": tuning}
    with tempfile.TemporaryDirectory(prefix="apexverify-lifecycle-") as tmp:
        work = Path(tmp)
        if not args.skip_lifecycle:
            path = work / "list.txt"
            email_file(path, args.rows)
            # The load run measures latency, not the rate limit: lift it far above wrk's rate.
            limit = {"APEXVERIFY_RATE_LIMIT_PER_MINUTE": "1000000000"}
            server = start_server(work / "server", **tuning, **limit)
            try:
                key, _ = server.create_account(sandbox=True, email_credits=args.rows * 4)
                if args.load_only:
                    small = work / "small.txt"
                    email_file(small, 1000)
                    client = httpx.Client(base_url=server.base_url, headers={"X-API-Key": key})
                    uuid = upload(client, small, "bench status")
                    wait_for(client, uuid, "ready_for_verification")
                else:
                    report["lifecycle"] = lifecycle(server, key, path, args.rows, work)
                    uuid = report["lifecycle"]["batch_uuid"]
                if args.load or args.load_only:
                    report["load"] = load_run(server, key, path, uuid, args.load_seconds)
            finally:
                server.stop()
        if args.lab:
            report["lab"] = lab_run(args.lab, work, tuning)
    for runs in report.get("load", {}).values():
        for run in runs:
            run.pop("raw", None)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
