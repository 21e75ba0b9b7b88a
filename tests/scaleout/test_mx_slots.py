"""The Redis-backed per-MX cap holds across processes' worth of clients and survives a
holder that dies without releasing."""

from __future__ import annotations

import asyncio

from apexverify.verify.email.redis_slots import RedisMxSlots


def test_cap_is_shared_between_independent_clients(redis_url: str) -> None:
    async def scenario() -> int:
        # Two clients = two workers on different machines, same MX address.
        workers = [RedisMxSlots(redis_url, 2), RedisMxSlots(redis_url, 2)]
        inside = peak = 0

        async def probe(slots: RedisMxSlots) -> None:
            nonlocal inside, peak
            async with slots.acquire("192.0.2.10"):
                inside += 1
                peak = max(peak, inside)
                await asyncio.sleep(0.05)
                inside -= 1

        await asyncio.gather(*(probe(workers[i % 2]) for i in range(12)))
        for slots in workers:
            await slots.aclose()
        return peak

    assert asyncio.run(scenario()) == 2


def test_lease_of_a_dead_holder_expires(redis_url: str) -> None:
    async def scenario() -> float:
        dead = RedisMxSlots(redis_url, 1, lease_seconds=0.5)
        # A holder killed with -9: its lease is taken and never released or renewed.
        assert await dead._try("apexverify:mx:198.51.100.7", "killed-worker")
        alive = RedisMxSlots(redis_url, 1, lease_seconds=0.5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with alive.acquire("198.51.100.7"):
            waited = loop.time() - started
        await dead.aclose()
        await alive.aclose()
        return waited

    waited = asyncio.run(scenario())
    assert 0.3 < waited < 3
