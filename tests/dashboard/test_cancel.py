"""The batch page's "Cancel verification" button, through the in-process app (the fast tier's
lab: the queue runs only when told, so the batch is caught in the middle): the button is
there while the batch runs, needs the CSRF token, cancels, and the page then says how many
records were not verified and what was refunded."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.batches.test_cancel import run_jobs
from tests.support.fast import Lab, open_lab

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
ROWS, CHUNK = 20, 5
CONTENT = "".join(f"user{i}@example{i % 3}.com\n" for i in range(ROWS))


async def _token(client: httpx.AsyncClient, path: str) -> str:
    found = TOKEN.search((await client.get(path)).text)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


async def _sign_in(lab: Lab, api_key: str) -> None:
    token = await _token(lab.client, "/signin")
    answer = await lab.client.post(
        "/signin", data={"api_key": api_key, "next": "/", "csrf_token": token}
    )
    assert answer.status_code == 303, answer.text


async def test_the_cancel_button_stops_a_running_batch(tmp_path: Path) -> None:
    async with open_lab(tmp_path, verify_chunk_size=CHUNK) as lab:
        account_id, key = lab.account(email=100)
        batch_uuid = await lab.upload(key, CONTENT)
        assert (await lab.post(key, f"/v1/batch/{batch_uuid}")).json() == {"status": "ok"}
        await run_jobs(lab.queue, 3)  # the fan-out and two chunks: 10 of 20 verified
        await _sign_in(lab, key)
        page_path = f"/batches/{batch_uuid}"

        running = (await lab.client.get(page_path)).text
        assert f'action="/batches/{batch_uuid}/cancel"' in running
        assert "Cancel verification" in running
        assert "data-confirm=" in running  # the browser asks before it posts

        forged = await lab.client.post(f"{page_path}/cancel", data={"csrf_token": "forged"})
        assert forged.status_code == 403
        still = (await lab.get(key, f"/v1/batch/{batch_uuid}")).json()
        assert still["status"] == "verification_ongoing"

        token = await _token(lab.client, page_path)
        answer = await lab.client.post(f"{page_path}/cancel", data={"csrf_token": token})
        assert answer.status_code == 303
        assert answer.headers["location"] == page_path
        await lab.queue.run_all()  # the queued chunks find nothing to do

        done = (await lab.client.get(page_path)).text
        assert "Verification cancelled" in done
        assert "Cancel verification" not in done
        assert re.search(r"data-cancelled>10<", done)
        assert re.search(r"data-refunded>10<", done)  # sandbox verdicts: no inconclusive ones
        assert lab.balance(account_id) == 100 - ROWS + 10
        status = (await lab.get(key, f"/v1/batch/{batch_uuid}")).json()
        assert status["cancelled"] is True

        again = await lab.client.post(f"{page_path}/cancel", data={"csrf_token": token})
        assert again.status_code == 409
        assert "The batch was already cancelled." in again.text
        assert lab.balance(account_id) == 100 - ROWS + 10


async def test_the_launch_page_says_a_running_batch_can_be_cancelled(tmp_path: Path) -> None:
    async with open_lab(tmp_path) as lab:
        _account_id, key = lab.account(email=100)
        batch_uuid = await lab.upload(key, CONTENT)
        await _sign_in(lab, key)
        launch = (await lab.client.get(f"/batches/{batch_uuid}/launch")).text
        assert "cannot be stopped" not in launch
        assert "can be cancelled while it runs" in launch
        ready = (await lab.client.get(f"/batches/{batch_uuid}")).text
        assert "Cancel verification" not in ready  # nothing runs yet
