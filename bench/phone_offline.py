"""Benchmark: offline phone analysis of N numbers (default 1,000,000).

    .venv/bin/python bench/phone_offline.py [--count N] [--processes P] [--region US]

Phases, all over the same deterministic input:

1. ``plain loop``: the straightforward single-process phonenumbers loop (parse, possible
   length, validity, type, carrier, E.164), the baseline;
2. ``analyze, 1 process``: the engine's offline analysis (``verify.phone.analyze``), one
   number at a time in this process;
3. ``engine, 1 process``: what a worker does with a phone batch and no lookup provider:
   ``PhoneVerifier.verify_many`` over chunks of ``--chunk`` numbers (the default
   ``APEXVERIFY_VERIFY_CHUNK_SIZE``), results built and counted;
4. ``analyze, P processes``: phase 2 spread over a process pool of this script (P workers,
   each analysing chunks), an upper bound for P worker processes on this machine.

For each phase: numbers/s and peak memory of this process plus its worker processes, sampled
every 50 ms (RSS summed, which counts pages shared by forked workers once per process, and
PSS summed, which splits shared pages fairly), the cores actually used (CPU seconds / wall
seconds) and the 1-minute load average before and after, since other work on the machine
skews every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import phonenumbers
import psutil
from phonenumbers import PhoneNumberFormat, PhoneNumberType, carrier

from apexverify.settings import Settings
from apexverify.verify.base import PhoneResult, VerifyContext, VerifyItem
from apexverify.verify.phone import PhoneAnalysis, PhoneVerifier, analyze

# (region, type, share of the international part of the mix)
_FOREIGN = [
    ("GB", PhoneNumberType.MOBILE, 8),
    ("GB", PhoneNumberType.FIXED_LINE, 4),
    ("DE", PhoneNumberType.MOBILE, 6),
    ("DE", PhoneNumberType.FIXED_LINE, 3),
    ("FR", PhoneNumberType.MOBILE, 6),
    ("FR", PhoneNumberType.FIXED_LINE, 2),
    ("IN", PhoneNumberType.MOBILE, 8),
    ("SG", PhoneNumberType.MOBILE, 3),
    ("BR", PhoneNumberType.MOBILE, 4),
    ("JP", PhoneNumberType.MOBILE, 3),
    ("AU", PhoneNumberType.MOBILE, 3),
    ("MX", PhoneNumberType.MOBILE, 3),
    ("NG", PhoneNumberType.MOBILE, 2),
    ("CA", PhoneNumberType.FIXED_LINE_OR_MOBILE, 3),
    ("GB", PhoneNumberType.TOLL_FREE, 1),
]
_JUNK = ["", "n/a", "12345", "+", "call me", "0000", "+999 123 456 789", "555-0123"]


def _templates(region: str, number_type: int) -> list[str]:
    example = phonenumbers.example_number_for_type(region, number_type)
    if example is None:
        return []
    return [
        phonenumbers.format_number(example, PhoneNumberFormat.E164),
        phonenumbers.format_number(example, PhoneNumberFormat.INTERNATIONAL),
        phonenumbers.format_number(example, PhoneNumberFormat.RFC3966),
    ]


def _national_templates(region: str) -> list[str]:
    example = phonenumbers.example_number_for_type(region, PhoneNumberType.FIXED_LINE_OR_MOBILE)
    example = example or phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
    assert example is not None
    national = phonenumbers.format_number(example, PhoneNumberFormat.NATIONAL)
    digits = phonenumbers.national_significant_number(example)
    return [national, digits, national.replace(" ", "."), f"{national} ext. 12"]


def _randomize(template: str, rng: random.Random, keep: int) -> str:
    """Replace every digit after the first ``keep`` digits, keeping the punctuation."""
    out = []
    seen = 0
    for char in template:
        if char.isdigit():
            seen += 1
            if seen > keep:
                char = str(rng.randrange(10))
        out.append(char)
    return "".join(out)


def generate(count: int, region: str, seed: int = 20241122) -> list[str]:
    """A deterministic, realistic mix: 45% national forms of ``region``, 47% foreign numbers
    in international forms, 5% unallocated ranges, 3% junk."""
    rng = random.Random(seed)
    national = _national_templates(region)
    foreign: list[tuple[list[str], int]] = [
        (_templates(r, t), w) for r, t, w in _FOREIGN if _templates(r, t)
    ]
    foreign_pool = [tpl for tpls, weight in foreign for tpl in tpls for _ in range(weight)]
    numbers: list[str] = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.45:
            # keep the area code (first 3 national digits) so most stay in allocated ranges
            numbers.append(_randomize(rng.choice(national), rng, 3))
        elif roll < 0.92:
            template = rng.choice(foreign_pool)
            # country code + a few leading digits keep the range; the rest is random
            numbers.append(_randomize(template, rng, 5))
        elif roll < 0.97:
            numbers.append(_randomize("+1 999 555 0000", rng, 4))  # unallocated NANP area
        else:
            numbers.append(rng.choice(_JUNK))
    return numbers


def plain_loop(numbers: list[str], region: str) -> Counter[str]:
    """The baseline: what a straightforward per-number phonenumbers loop does."""
    counts: Counter[str] = Counter()
    for raw in numbers:
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            counts["syntax_error"] += 1
            continue
        if not phonenumbers.is_possible_number(number):
            counts["syntax_error"] += 1
            continue
        phonenumbers.format_number(number, PhoneNumberFormat.E164)
        if not phonenumbers.is_valid_number(number):
            counts["unallocated"] += 1
            continue
        phonenumbers.number_type(number)
        carrier.name_for_number(number, "en")
        counts["allocated"] += 1
    return counts


def _kind(analysis: PhoneAnalysis) -> str:
    if analysis.e164 is None:
        return "syntax_error"
    return "allocated" if analysis.valid_range else "unallocated"


def _chunks(numbers: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(numbers), size):
        yield numbers[start : start + size]


def analyze_loop(numbers: Iterable[str], region: str) -> Counter[str]:
    """Phase 2, and the work of one pool worker in phase 4."""
    return Counter(_kind(analyze(raw, region)) for raw in numbers)


def engine_loop(numbers: list[str], region: str, chunk: int) -> Counter[str]:
    """Phase 3: the phone engine without a lookup provider, chunk by chunk."""

    async def run() -> Counter[str]:
        verifier = PhoneVerifier(Settings(phone_lookup_provider="none"))
        context = VerifyContext(target_country=region)
        counts: Counter[str] = Counter()
        try:
            for part in _chunks(numbers, chunk):
                outcomes = await verifier.verify_many([VerifyItem(n) for n in part], context)
                for outcome in outcomes:
                    assert isinstance(outcome, PhoneResult)
                    if outcome.is_syntax_error:
                        counts["syntax_error"] += 1
                    elif outcome.wrong:  # offline, "wrong" means an unallocated range
                        counts["unallocated"] += 1
                    else:
                        counts["allocated"] += 1
        finally:
            await verifier.aclose()
        return counts

    return asyncio.run(run())


def _warm_worker() -> None:
    # Parse one number per worker up front: it imports the region metadata the first chunk
    # would otherwise load while the clock is running.
    analyze_loop(["+14155550123", "+447700900123"], "US")


def pool_loop(numbers: list[str], region: str, processes: int, chunk: int) -> Counter[str]:
    """Phase 4: chunks analysed by ``processes`` worker processes, counts summed here."""
    counts: Counter[str] = Counter()
    with ProcessPoolExecutor(max_workers=processes, initializer=_warm_worker) as pool:
        parts = list(_chunks(numbers, chunk))
        for part_counts in pool.map(analyze_loop, parts, [region] * len(parts)):
            counts.update(part_counts)
    return counts


@dataclass
class MemorySampler:
    peak_rss: int = 0
    peak_pss: int = 0
    peak_workers: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            rss = pss = 0
            procs = [me]
            with suppress(psutil.Error):
                procs += me.children(recursive=True)
            for proc in procs:
                try:
                    info = proc.memory_full_info()
                except psutil.Error:
                    continue
                rss += info.rss
                pss += getattr(info, "pss", info.rss)
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_workers = max(self.peak_workers, len(procs) - 1)
            self._stop.wait(0.05)

    @contextmanager
    def running(self) -> Iterator[MemorySampler]:
        thread = threading.Thread(target=self._sample, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()


@dataclass
class Phase:
    name: str
    seconds: float
    per_second: float
    peak_rss_mb: float
    peak_pss_mb: float
    workers: int
    cores_used: float  # CPU seconds of this process and its workers / wall seconds
    load_before: float  # 1-minute load average: other work on the machine skews figures
    load_after: float
    counts: dict[str, int]


def _cpu_seconds() -> float:
    # Pool workers are reaped when the pool closes, so their CPU time lands in the
    # children_* fields (the sampler thread's own CPU is included; it is ~1%).
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def run_phase(name: str, count: int, work: Callable[[], Counter[str]]) -> Phase:
    sampler = MemorySampler()
    load_before = os.getloadavg()[0]
    cpu_before = _cpu_seconds()
    with sampler.running():
        started = time.perf_counter()
        counts = work()
        seconds = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_before
    phase = Phase(
        name=name,
        seconds=round(seconds, 2),
        per_second=round(count / seconds),
        peak_rss_mb=round(sampler.peak_rss / 2**20, 1),
        peak_pss_mb=round(sampler.peak_pss / 2**20, 1),
        workers=sampler.peak_workers,
        cores_used=round(cpu / seconds, 2),
        load_before=round(load_before, 2),
        load_after=round(os.getloadavg()[0], 2),
        counts=dict(sorted(counts.items())),
    )
    print(
        f"{name:<36} {phase.seconds:>8.2f} s {phase.per_second:>10,} numbers/s   "
        f"peak RSS {phase.peak_rss_mb:>7.1f} MB  PSS {phase.peak_pss_mb:>7.1f} MB  "
        f"workers {phase.workers}  cores used {phase.cores_used}  "
        f"load {phase.load_before}->{phase.load_after}  {phase.counts}",
        flush=True,
    )
    return phase


def machine() -> dict[str, object]:
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "phonenumbers": phonenumbers.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--region", default="US")
    parser.add_argument("--chunk", type=int, default=Settings().verify_chunk_size)
    parser.add_argument("--pool-chunk", type=int, default=5_000, help="numbers per pool task")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    started = time.perf_counter()
    numbers = generate(args.count, args.region)
    print(f"generated {len(numbers):,} numbers in {time.perf_counter() - started:.1f} s")

    phases = [
        run_phase("plain loop, 1 process", args.count, lambda: plain_loop(numbers, args.region)),
        run_phase("analyze, 1 process", args.count, lambda: analyze_loop(numbers, args.region)),
        run_phase(
            f"engine, 1 process, chunks of {args.chunk}",
            args.count,
            lambda: engine_loop(numbers, args.region, args.chunk),
        ),
        run_phase(
            f"analyze, {args.processes} processes",
            args.count,
            lambda: pool_loop(numbers, args.region, args.processes, args.pool_chunk),
        ),
    ]
    ratio = phases[3].per_second / phases[0].per_second
    print(f"parallel analysis vs plain loop: {ratio:.2f}x")
    if args.json:
        report = {
            "command": f"bench/phone_offline.py --count {args.count}",
            "machine": machine(),
            "phases": [p.__dict__ for p in phases],
            "ratio_parallel_vs_plain": round(ratio, 2),
        }
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
