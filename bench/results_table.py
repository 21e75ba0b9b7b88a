"""The dashboard's results table on a big finished batch, over real HTTP.

    .venv/bin/python bench/results_table.py --rows 1000000
    .venv/bin/python bench/results_table.py --rows 1000000 --data-dir /tmp/rt  # keep/reuse it

Builds a finished sandbox batch through the API (upload, parse, launch, verify: a live embedded
server, SQLite) from a mixed list (sandbox local parts: valid, invalid, unknown, catch-all,
disposable, role; free providers; 1% malformed rows kept), signs in to the dashboard and times
``GET /batches/{uuid}/results`` for several filters: the first request and then ``--repeat``
more each (median, max); then the decision counts of the chips (``/results/counts``: one
grouped scan, then kept in memory for a finished batch).
Target (issue #16): a filtered page in under 300 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "src")]

from tests.support.dashboard import signed_in  # noqa: E402
from tests.support.server import start_server  # noqa: E402

from _common import machine  # noqa: E402
from lifecycle import wait_for  # noqa: E402

TARGET_MS = 300
# Weights of the sandbox local parts (docs/sandbox.md): mostly good, as real lists are.
KINDS = (
    ("valid", 70),
    ("invalid", 12),
    ("unknown", 6),
    ("catchall", 4),
    ("disposable", 2),
    ("role", 4),
    ("broken", 2),  # malformed: a syntax error (kept in the results)
)
DOMAINS = ("example.com", "gmail.com", "corp.example", "yahoo.com", "shop.example")


def mixed_file(path: Path, rows: int, seed: int = 11) -> None:
    rng = random.Random(seed)
    names = [k for k, _ in KINDS]
    weights = [w for _, w in KINDS]
    with path.open("w") as out:
        for i, kind in enumerate(rng.choices(names, weights, k=rows)):
            if kind == "broken":
                out.write(f"broken-{i}@\n")
            else:
                out.write(f"{kind}+{i}@{DOMAINS[i % len(DOMAINS)]}\n")


def build_batch(client: httpx.Client, path: Path) -> str:
    with path.open("rb") as handle:
        answer = client.post(
            "/v1/batch",
            files={"file": ("list.txt", handle, "text/plain")},
            data={
                "name": "results-table bench",
                "type": "email",
                "target_country": "US",
                "remove_wrong_email_format": "false",
            },
        )
    answer.raise_for_status()
    batch_uuid = str(answer.json()["batch_uuid"])
    wait_for(client, batch_uuid, "ready_for_verification")
    client.post(f"/v1/batch/{batch_uuid}").raise_for_status()
    wait_for(client, batch_uuid, "verification_done")
    return batch_uuid


def cases(rows: int) -> list[tuple[str, dict[str, str]]]:
    late = str(rows - 2000)
    return [
        ("no filter", {}),
        ("decision=undeliverable", {"decision": "undeliverable"}),
        ("quality=risky", {"quality": "risky"}),
        ("decision=deliverable,risky size=100", {"decision": "deliverable,risky", "size": "100"}),
        ("flag=is_disposable", {"flag": "is_disposable"}),
        ("flags free+role", {"flag": "is_free,is_role"}),
        ("search that matches (catchall+9)", {"q": "catchall+9"}),
        ("search that matches nothing", {"q": "nobody-here"}),
        ("late page (after=rows-2000)", {"after": late}),
        ("late page, decision=risky", {"after": late, "decision": "risky"}),
        ("previous page from the end", {"before": str(rows - 1)}),
    ]


def params(raw: dict[str, str]) -> list[tuple[str, str]]:
    return [(k, v) for k, values in raw.items() for v in values.split(",")]


def timed(client: httpx.Client, path: str, query: list[tuple[str, str]]) -> tuple[float, str]:
    start = time.perf_counter()
    answer = client.get(path, params=query)
    ms = (time.perf_counter() - start) * 1000
    answer.raise_for_status()
    return ms, answer.text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, help="server data (kept; reused if present)")
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-results-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    state = data_dir / "bench.json"
    server = start_server(data_dir / "server")
    try:
        if state.exists():
            saved = json.loads(state.read_text())
            key, batch_uuid = saved["key"], saved["batch_uuid"]
        else:
            key, _ = server.create_account(sandbox=True, email_credits=args.rows * 2)
            listing = data_dir / "list.txt"
            mixed_file(listing, args.rows)
            api = httpx.Client(base_url=server.base_url, headers={"X-API-Key": key}, timeout=600)
            start = time.perf_counter()
            batch_uuid = build_batch(api, listing)
            print(f"built {args.rows:,} rows in {time.perf_counter() - start:.0f} s", flush=True)
            state.write_text(json.dumps({"key": key, "batch_uuid": batch_uuid}))
        print(machine(), flush=True)
        dash = signed_in(server, key)
        dash.timeout = httpx.Timeout(120)
        path = f"/batches/{batch_uuid}/results"
        results = []
        for name, raw in cases(args.rows):
            query = params(raw)
            first, html = timed(dash, path, query)
            warm = [timed(dash, path, query)[0] for _ in range(args.repeat)]
            shown = html.count("<tr data-seq=")
            row = {
                "case": name,
                "rows_shown": shown,
                "stopped_short": 'id="search-more"' in html,
                "first_ms": round(first),
                "median_ms": round(statistics.median(warm)),
                "max_ms": round(max(warm)),
                "under_target": max(warm) < TARGET_MS,
            }
            results.append(row)
            print(json.dumps(row), flush=True)
        counts = [timed(dash, f"{path}/counts", [])[0] for _ in range(3)]
        row = {
            "case": "decision counts (chips)",
            "first_ms": round(counts[0]),
            "warm_ms": round(max(counts[1:])),
        }
        print(json.dumps(row), flush=True)
        batch_ms, _ = timed(dash, f"/batches/{batch_uuid}", [])
        print(json.dumps({"case": "batch page (for reference)", "first_ms": round(batch_ms)}))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
