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

``--strict`` runs the engine against servers with Postfix's anti-abuse limits instead
(``tests/labs/strict_smtp.py``, one server state per loopback MX address, shared by the
domains on it): ``--strict-rcpt-per-connection`` recipients per connection (``452 4.5.3``),
``--strict-rcpt-rate`` recipients per window per client (anvil: ``450 4.7.1``),
``--strict-connection-rate`` connections per window (``421 4.7.0``), and the stock error
limits (replies delayed by 1 s after 10 errors in a session, ``421`` after 20). The window is
``--strict-window`` seconds (Postfix: 60), the engine is told the same
(``APEXVERIFY_SMTP_LIMIT_WINDOW_SECONDS``) and retries greylisting after
``--strict-retry`` seconds. Addresses go through a runner-like loop: chunks of due
addresses cut by domain, ``--parallel`` in flight, each retry when due (``not_before`` when
the engine sets one), at most 3 attempts. Printed: addresses/s to the last verdict, the share
of conclusive verdicts (valid or wrong), and what the servers saw. The script also runs on
an older tree (copy it with ``tests/labs/strict_smtp.py`` into a ``git worktree``): settings
the older engine lacks are left out.

    .venv/bin/python bench/email_smtp.py --strict --addresses 6000 --domains 60 --ips 12
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
from tests.labs.strict_smtp import StrictPolicy, StrictProtocol, StrictServer  # noqa: E402

from _common import machine as common_machine  # noqa: E402
from apexverify.settings import Settings  # noqa: E402
from apexverify.verify.base import EmailResult, Retry, VerifyContext, VerifyItem  # noqa: E402
from apexverify.verify.email.engine import EmailVerifier  # noqa: E402

BASE = "bench-example.com"


@dataclass(frozen=True)
class LabConfig:
    domains: int
    ips: int
    latency: float
    strict: StrictPolicy | None = None  # --strict: Postfix-like limits per MX address


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


def _strict_stats(servers: list[StrictServer]) -> dict[str, int]:
    sessions = [session for server in servers for session in server.sessions]
    codes = [code for session in sessions for _, _, code in session.rcpts]
    return {
        "connections": len(sessions),
        "rcpt": len(codes),
        "data": sum(server.data for server in servers),
        "refused_connections": sum(1 for s in sessions if s.refused is not None),
        "limit_replies": sum(1 for code in codes if code in (450, 452)),
        "delayed_replies": sum(s.delayed for s in sessions),
        "cut_sessions": sum(1 for s in sessions if s.cut),
        "max_errors_per_connection": max((s.errors for s in sessions), default=0),
    }


async def _serve_strict(
    config: LabConfig, ips: list[str], port: int
) -> tuple[list[asyncio.Server], list[StrictServer]]:
    assert config.strict is not None
    loop = asyncio.get_running_loop()
    listeners: list[asyncio.Server] = []
    servers: list[StrictServer] = []
    for ip in ips:
        state = StrictServer(ip, config.strict)
        servers.append(state)
        listeners.append(
            await loop.create_server(lambda s=state: StrictProtocol(s), host=ip, port=port)
        )
    return listeners, servers


def run_lab(config: LabConfig, pipe: Connection) -> None:
    """Lab process: DNS + SMTP servers until the parent sends anything on ``pipe``."""

    async def main() -> None:
        dns_server = LabDnsServer(bench_zone(config)).start()
        ips = lab_ips(config.ips)
        port = free_port(ips)
        recorder = LabRecorder()
        strict: list[StrictServer] = []
        if config.strict is not None:
            listeners, strict = await _serve_strict(config, ips, port)
        else:
            listeners = [
                await serve_behaviour(
                    "rejects", ips, port, recorder, latency=config.latency, answer=_answer
                )
            ]
        pipe.send((dns_server.nameserver, port))
        loop = asyncio.get_running_loop()
        cpu_mark = time.process_time()
        while True:
            message = await loop.run_in_executor(None, pipe.recv)
            if message == "stats" and strict:
                pipe.send({**_strict_stats(strict), "cpu": time.process_time() - cpu_mark})
                for state in strict:
                    state.sessions.clear()
                cpu_mark = time.process_time()
            elif message == "stats":
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
        for listener in listeners:
            listener.close()
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


@dataclass
class Completed:
    """One ``verify_many`` call on the whole list, then again on what it handed back as a
    retry (held back by the politeness limits, greylisted), until every address has its
    verdict: what a batch runner must do with a call's retries too."""

    seconds: float  # first call to last verdict
    first_call_seconds: float
    first_call_decided: int  # verdicts in the first call (the rest came back as retries)
    calls: int
    verdicts: dict[str, int]


async def run_engine_to_the_end(
    addresses: list[str], settings: Settings, max_calls: int = 20
) -> Completed:
    verifier = EmailVerifier(settings)
    context = VerifyContext(max_attempts=3)
    items = [VerifyItem(a) for a in addresses]
    verdicts: dict[str, int] = {}
    start = time.perf_counter()
    first_seconds, first_decided, calls = 0.0, 0, 0
    while items and calls < max_calls:
        outcomes = await verifier.verify_many(items, context)
        calls += 1
        again: list[VerifyItem] = []
        due = time.time()
        for item, outcome in zip(items, outcomes, strict=True):
            if isinstance(outcome, Retry):
                attempt = item.attempt + 1 if outcome.consumes_attempt else item.attempt
                again.append(VerifyItem(item.value, attempt))
                due = max(due, outcome.due_at(time.time()))
            else:
                verdicts[outcome.verdict] = verdicts.get(outcome.verdict, 0) + 1
        if calls == 1:
            first_seconds = time.perf_counter() - start
            first_decided = len(items) - len(again)
        items = again
        if items:
            await asyncio.sleep(max(0.0, due - time.time()))
    elapsed = time.perf_counter() - start
    if items:
        verdicts["retry"] = len(items)
    await verifier.aclose()
    return Completed(elapsed, first_seconds, first_decided, calls, verdicts)


def strict_settings(nameserver: str, port: int, args: argparse.Namespace) -> Settings:
    """The engine's settings for --strict; only those the engine under test knows."""
    values: dict[str, object] = {
        "dns_nameservers": [nameserver],
        "dns_canaries": [],
        "smtp_port": port,
        "smtp_allow_private_networks": True,
        "smtp_timeout_seconds": 10.0,
        "smtp_max_connections": args.max_connections,
        "smtp_max_connections_per_mx": args.per_mx,
        "smtp_rcpt_per_connection": args.rcpt_per_connection,
        "smtp_greylist_retry_seconds": args.strict_retry,
        "smtp_limit_window_seconds": args.strict_window,
        "smtp_helo_name": "bench.lab-example.com",
        "smtp_mail_from": "probe@lab-example.com",
    }
    known = Settings.model_fields
    return Settings(**{k: v for k, v in values.items() if k in known})  # type: ignore[arg-type]


async def run_runner(
    addresses: list[str], settings: Settings, chunk: int, parallel: int, max_attempts: int = 3
) -> tuple[float, dict[str, int], EmailVerifier]:
    """The batch runner's loop in one process: due addresses in chunks cut by domain,
    ``parallel`` chunks in flight, each retry when it is due, ``max_attempts`` at most."""
    verifier = EmailVerifier(settings)
    context = VerifyContext(max_attempts=max_attempts)
    verdicts: dict[str, int] = {}
    waiting: list[tuple[float, VerifyItem]] = [(0.0, VerifyItem(a)) for a in addresses]
    slots = asyncio.Semaphore(parallel)

    async def one(items: list[VerifyItem]) -> None:
        async with slots:
            outcomes = await verifier.verify_many(items, context)
        read_at = time.time()
        for item, outcome in zip(items, outcomes, strict=True):
            if isinstance(outcome, Retry):
                not_before = getattr(outcome, "not_before", None)  # older engines: none
                spends = getattr(outcome, "consumes_attempt", True)
                due = not_before if not_before is not None else read_at + outcome.after_seconds
                waiting.append((due, VerifyItem(item.value, item.attempt + int(spends))))
            else:
                key = outcome.verdict
                verdicts[key] = verdicts.get(key, 0) + 1

    start = time.perf_counter()
    running: set[asyncio.Task[None]] = set()
    while waiting or running:
        now = time.time()
        due = sorted((i for at, i in waiting if at <= now), key=lambda i: i.value.split("@")[1])
        waiting[:] = [(at, i) for at, i in waiting if at > now]
        for offset in range(0, len(due), chunk):
            task = asyncio.create_task(one(due[offset : offset + chunk]))
            running.add(task)
            task.add_done_callback(running.discard)
        nap = min((at for at, _ in waiting), default=now + 0.05) - now
        await asyncio.sleep(min(max(nap, 0.01), 0.05))
    elapsed = time.perf_counter() - start
    await verifier.aclose()
    return elapsed, verdicts, verifier


def strict_main(args: argparse.Namespace) -> None:
    policy = StrictPolicy(
        rcpt_per_connection=args.strict_rcpt_per_connection,
        rcpt_rate=(args.strict_rcpt_rate, args.strict_window),
        connection_rate=(args.strict_connection_rate, args.strict_window),
        error_sleep=1.0,  # stock smtpd_error_sleep_time
        latency=args.latency_ms / 1000,
    )
    config = LabConfig(args.domains, args.ips, args.latency_ms / 1000, strict=policy)
    parent, child = multiprocessing.Pipe()
    lab = multiprocessing.get_context("spawn").Process(target=run_lab, args=(config, child))
    lab.start()
    nameserver, port = parent.recv()
    addresses = make_addresses(args.addresses, args.domains)
    settings = strict_settings(nameserver, port, args)
    print(f"machine: {machine()}")
    print(
        f"strict lab: {args.domains} domains on {args.ips} loopback IPs, {args.latency_ms:.0f} ms "
        f"per reply; per MX address: {policy.rcpt_per_connection} recipients per connection, "
        f"{args.strict_rcpt_rate} recipients and {args.strict_connection_rate} connections per "
        f"{args.strict_window:.0f} s window, stock error limits (10: 1 s delays, 20: 421); "
        f"{len(addresses)} addresses (20% unknown users), shuffled; greylist retry "
        f"{args.strict_retry:.0f} s, 3 attempts"
    )
    try:
        elapsed, verdicts, verifier = asyncio.run(
            run_runner(addresses, settings, args.chunk, args.parallel)
        )
        parent.send("stats")
        server = parent.recv()
        conclusive = verdicts.get("valid", 0) + verdicts.get("wrong", 0)
        print(
            f"runner, chunks of {args.chunk}, {args.parallel} in flight: {elapsed:.1f} s, "
            f"{len(addresses) / elapsed:,.0f} addresses/s, conclusive "
            f"{conclusive / len(addresses):.1%} ({verdicts}); server saw "
            f"{server['connections']:,} connections ({server['refused_connections']} refused "
            f"with 421), {server['rcpt']:,} RCPT, {server['limit_replies']} limit replies "
            f"(450/452), {server['delayed_replies']} delayed replies, {server['cut_sessions']} "
            f"sessions cut at the hard error limit, at most "
            f"{server['max_errors_per_connection']} errors on one connection; engine opened "
            f"{verifier.stats.connections_opened:,} connections; lab CPU {server['cpu']:.1f} s"
        )
        assert server["data"] == 0, "the engine must never send DATA"
    finally:
        parent.send("stop")
        lab.join(10)


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
    parser.add_argument("--strict", action="store_true", help="servers with Postfix's limits")
    parser.add_argument("--strict-rcpt-per-connection", type=int, default=20)
    parser.add_argument("--strict-rcpt-rate", type=int, default=60, help="per window")
    parser.add_argument("--strict-connection-rate", type=int, default=4, help="per window")
    parser.add_argument("--strict-window", type=float, default=2.0, help="seconds")
    parser.add_argument("--strict-retry", type=float, default=4.0, help="greylist retry, s")
    args = parser.parse_args()
    if args.strict:
        strict_main(args)
        return

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
