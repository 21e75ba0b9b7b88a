"""Email engine benchmark on a loopback SMTP lab with injected reply latency.

    .venv/bin/python bench/email_smtp.py                       # 100,000 addresses, 1,000 domains
    .venv/bin/python bench/email_smtp.py --addresses 20000 --domains 200 --naive-sample 100

A lab process serves a DNS zone (one MX per domain) and SMTP servers on ``--ips`` loopback
addresses (127.0.1.x ...), each reply delayed by ``--latency-ms``; 10% of the addresses are
unknown users (550 5.1.1). The engine runs in this process, fed the way the batch runner
feeds it (``verify_many`` on consecutive chunks of ``--chunk`` addresses in upload order,
which is shuffled; one chunk at a time, then ``--parallel`` chunks in flight as the embedded
runner does), then on the whole list at once (``--whole``). The naive way - one
connection per address, MX look-up, EHLO, MAIL, RCPT, QUIT, one address after another - is
measured on ``--naive-sample`` addresses and extrapolated to the full list.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import resource
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import aiosmtplib
import dns.asyncresolver
import dns.nameserver
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

sys.path.insert(0, str(ROOT / "bench"))
from tests.labs.dns_server import LabDnsServer  # noqa: E402
from tests.labs.smtp_lab import LabRecorder, free_port, rejects_answer, serve_behaviour  # noqa: E402

from _common import machine as common_machine  # noqa: E402
from apexverify.settings import Settings  # noqa: E402
from apexverify.verify.base import EmailResult, VerifyContext, VerifyItem  # noqa: E402
from apexverify.verify.email.engine import EmailVerifier  # noqa: E402

BASE = "bench-example.com"


@dataclass(frozen=True)
class LabConfig:
    domains: int
    ips: int
    latency: float


def lab_ips(count: int) -> list[str]:
    return [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(count)]


def domain_name(index: int) -> str:
    return f"d{index:05d}.{BASE}"


def bench_zone(config: LabConfig) -> str:
    ips = lab_ips(config.ips)
    lines = []
    for index in range(config.domains):
        domain = domain_name(index)
        lines.append(f"{domain}. 300 IN MX 10 mx.{domain}.")
        lines.append(f"mx.{domain}. 300 IN A {ips[index % len(ips)]}")
    return "\n".join(lines) + "\n"


def _known(local: str) -> bool:
    # user<N>: every tenth user does not exist
    return local.startswith("user") and not local.endswith("0")


def _answer(local: str, seen: int) -> str:
    return rejects_answer(local, seen, known=_known)


def run_lab(config: LabConfig, pipe: Connection) -> None:
    """Lab process: DNS + SMTP servers until the parent sends anything on ``pipe``."""

    async def main() -> None:
        dns_server = LabDnsServer(bench_zone(config)).start()
        ips = lab_ips(config.ips)
        port = free_port(ips)
        recorder = LabRecorder()
        server = await serve_behaviour(
            "rejects", ips, port, recorder, latency=config.latency, answer=_answer
        )
        pipe.send((dns_server.nameserver, port))
        loop = asyncio.get_running_loop()
        cpu_mark = time.process_time()
        while True:
            message = await loop.run_in_executor(None, pipe.recv)
            if message == "stats":
                pipe.send(
                    {
                        "connections": recorder.connections.total(),
                        "rcpt": len(recorder.rcpt_log),
                        "data": len(recorder.data_commands),
                        "cpu": time.process_time() - cpu_mark,
                    }
                )
                recorder.connections.clear()
                recorder.rcpt_log.clear()
                cpu_mark = time.process_time()
            else:
                break
        server.close()
        dns_server.stop()

    asyncio.run(main())


class PeakRss:
    """Samples this process's RSS every 20 ms (ru_maxrss cannot be reset between phases)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._process = psutil.Process()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def make_addresses(count: int, domains: int, seed: int = 1) -> list[str]:
    per_domain = count // domains
    addresses = [
        f"user{user}@{domain_name(d)}" for d in range(domains) for user in range(per_domain)
    ]
    random.Random(seed).shuffle(addresses)  # uploads are not sorted by domain
    return addresses


def engine_settings(nameserver: str, port: int, args: argparse.Namespace) -> Settings:
    return Settings(
        dns_nameservers=[nameserver],
        smtp_port=port,
        smtp_allow_private_networks=True,
        smtp_timeout_seconds=10.0,
        smtp_max_connections=args.max_connections,
        smtp_max_connections_per_mx=args.per_mx,
        smtp_rcpt_per_connection=args.rcpt_per_connection,
        smtp_helo_name="bench.lab-example.com",
        smtp_mail_from="probe@lab-example.com",
    )


async def run_engine(
    addresses: list[str], settings: Settings, chunk: int, parallel: int = 1
) -> tuple[float, dict[str, int], EmailVerifier]:
    """Consecutive chunks with up to ``parallel`` of them in flight, as the embedded runner
    does (``APEXVERIFY_VERIFY_PARALLEL_CHUNKS``)."""
    verifier = EmailVerifier(settings)
    context = VerifyContext(max_attempts=3)
    verdicts: dict[str, int] = {}
    slots = asyncio.Semaphore(parallel)

    async def one(offset: int) -> None:
        async with slots:
            items = [VerifyItem(a) for a in addresses[offset : offset + chunk]]
            for outcome in await verifier.verify_many(items, context):
                key = outcome.verdict if isinstance(outcome, EmailResult) else "retry"
                verdicts[key] = verdicts.get(key, 0) + 1

    start = time.perf_counter()
    await asyncio.gather(*(one(offset) for offset in range(0, len(addresses), chunk)))
    elapsed = time.perf_counter() - start
    await verifier.aclose()
    return elapsed, verdicts, verifier


async def run_naive(addresses: list[str], nameserver: str, port: int) -> tuple[float, int]:
    """One connection per address, one address after another (what a simple script does)."""
    host, _, ns_port = nameserver.partition(":")
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(host, int(ns_port))]
    accepted = 0
    start = time.perf_counter()
    for address in addresses:
        domain = address.rpartition("@")[2]
        mx = (await resolver.resolve(domain, "MX"))[0].exchange.to_text(omit_final_dot=True)
        ip = (await resolver.resolve(mx, "A"))[0].to_text()
        client = aiosmtplib.SMTP(
            hostname=ip,
            port=port,
            timeout=10,
            local_hostname="bench.lab-example.com",
            start_tls=False,
        )
        await client.connect()
        await client.ehlo()
        await client.execute_command(b"MAIL", b"FROM:<probe@lab-example.com>")
        reply = await client.execute_command(b"RCPT", f"TO:<{address}>".encode())
        accepted += reply.code == 250
        await client.quit()
    return time.perf_counter() - start, accepted


def machine() -> str:
    return f"{common_machine()}, aiosmtplib {aiosmtplib.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--addresses", type=int, default=100_000)
    parser.add_argument("--domains", type=int, default=1_000)
    parser.add_argument("--ips", type=int, default=250, help="loopback addresses serving MX")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--chunk", type=int, default=500, help="verify_many chunk (runner)")
    parser.add_argument("--whole", action="store_true", help="also one verify_many call")
    parser.add_argument(
        "--parallel", type=int, default=4, help="chunks in flight (verify_parallel_chunks)"
    )
    parser.add_argument("--naive-sample", type=int, default=200)
    parser.add_argument("--max-connections", type=int, default=200)
    parser.add_argument("--per-mx", type=int, default=5)
    parser.add_argument("--rcpt-per-connection", type=int, default=50)
    args = parser.parse_args()

    config = LabConfig(args.domains, args.ips, args.latency_ms / 1000)
    parent, child = multiprocessing.Pipe()
    lab = multiprocessing.get_context("spawn").Process(target=run_lab, args=(config, child))
    lab.start()
    nameserver, port = parent.recv()
    addresses = make_addresses(args.addresses, args.domains)
    settings = engine_settings(nameserver, port, args)
    print(f"machine: {machine()}")
    print(
        f"lab: {args.domains} domains on {args.ips} loopback IPs, {args.latency_ms:.0f} ms per "
        f"reply; {len(addresses)} addresses (10% unknown users), shuffled"
    )
    try:
        runs = [(f"engine, chunks of {args.chunk} one at a time", args.chunk, 1)]
        if args.parallel > 1:
            label = f"engine, chunks of {args.chunk}, {args.parallel} in flight (the runner)"
            runs.append((label, args.chunk, args.parallel))
        if args.whole:
            runs.append(("engine, one verify_many call", len(addresses), 1))
        engine_rate = 0.0
        for label, chunk, parallel in runs:
            cpu0 = time.process_time()
            with PeakRss() as rss:
                elapsed, verdicts, verifier = asyncio.run(
                    run_engine(addresses, settings, chunk, parallel)
                )
            cpu = time.process_time() - cpu0
            parent.send("stats")
            server = parent.recv()
            rate = len(addresses) / elapsed
            if chunk == args.chunk and parallel == max(args.parallel, 1):
                engine_rate = rate  # the ratio to the naive loop is the runner's
            print(
                f"{label}: {elapsed:.1f} s, {rate:,.0f} addresses/s, "
                f"connections opened {verifier.stats.connections_opened:,} "
                f"(server saw {server['connections']:,}), RCPT {server['rcpt']:,}, "
                f"client CPU {cpu:.1f} s, lab CPU {server['cpu']:.1f} s, "
                f"peak RSS {rss.peak / 2**20:.0f} MiB, verdicts {verdicts}"
            )
            assert server["data"] == 0, "the engine must never send DATA"
        sample = addresses[: args.naive_sample]
        with PeakRss() as rss:
            naive_elapsed, accepted = asyncio.run(run_naive(sample, nameserver, port))
        parent.send("stats")
        server = parent.recv()
        naive_rate = len(sample) / naive_elapsed
        print(
            f"naive loop: {len(sample)} addresses in {naive_elapsed:.1f} s = {naive_rate:,.1f} "
            f"addresses/s ({accepted} accepted, {server['connections']} connections); "
            f"extrapolated to {len(addresses):,}: {len(addresses) / naive_rate / 3600:.2f} h; "
            f"peak RSS {rss.peak / 2**20:.0f} MiB"
        )
        print(f"engine (as the runner drives it) / naive: {engine_rate / naive_rate:,.0f}x")
        max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"process max RSS (whole run): {max_rss:.0f} MiB")
    finally:
        parent.send("stop")
        lab.join(10)


if __name__ == "__main__":
    main()
