"""The batch page shows a banner while a running batch is stalled (the engine's reason and
the next attempt), hidden while it moves; the status the page polls carries the same."""

from __future__ import annotations

from pathlib import Path

from tests.batches.test_stalls import CONTENT, REASON, BlockingVerifier
from tests.dashboard.test_cancel import _sign_in
from tests.support.fakes import FakeEngines
from tests.support.fast import open_lab


async def test_a_stalled_batch_shows_why_on_its_page(tmp_path: Path) -> None:
    engine = BlockingVerifier()
    async with open_lab(tmp_path, FakeEngines(engine), verify_chunk_size=5) as lab:
        _account, key = lab.account(email=100)
        batch_uuid = await lab.upload(key, CONTENT)
        assert (await lab.post(key, f"/v1/batch/{batch_uuid}")).json() == {"status": "ok"}
        await _sign_in(lab, key)
        page_path = f"/batches/{batch_uuid}"

        moving = (await lab.client.get(page_path)).text
        assert 'id="stall" role="status" hidden' in moving

        await lab.queue.run_due()  # every chunk decides nothing: stalled
        stalled = (await lab.client.get(page_path)).text
        assert 'id="stall" role="status">' in stalled
        assert REASON in stalled
        assert "ends unknown and is refunded" in stalled
        polled = (await lab.client.get(f"{page_path}/status")).json()
        assert REASON in polled["stall"]["reason"]
