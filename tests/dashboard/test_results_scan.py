"""The results table's bounded scan, rendered: with a scan window smaller than the batch
(patched in this process: the in-process app of the fast tier), a search that matches nothing
says which rows it searched and links on from there, and walking those links reaches the
match at the end of the file."""

from __future__ import annotations

import re

import pytest

from apexverify.batches import results_view
from tests.support.fast import Lab

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


async def _signed_in(lab: Lab, api_key: str) -> None:
    token = TOKEN.search((await lab.client.get("/signin")).text)
    assert token
    answer = await lab.client.post(
        "/signin", data={"api_key": api_key, "next": "/", "csrf_token": token.group(1)}
    )
    assert answer.status_code == 303


async def test_search_more_walks_the_file_in_windows(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(results_view, "SCAN_ROWS", 40)
    _account_id, key = lab.account(sandbox=True, email=1000)
    lines = [f"valid+{i}@example.com" for i in range(119)] + ["needle@example.com"]
    batch_uuid = await lab.upload(key, "\n".join(lines) + "\n")
    assert (await lab.post(key, f"/v1/batch/{batch_uuid}")).json() == {"status": "ok"}
    await lab.queue.run_all()
    await _signed_in(lab, key)

    answer = await lab.client.get(f"/batches/{batch_uuid}/results", params={"q": "NEEDLE"})
    assert answer.status_code == 200
    assert "Searched rows 1 to 40 of 120" in answer.text
    windows = 1
    while "needle@example.com</th>" not in answer.text:
        more = re.search(r'<a href="([^"]+)">Search the next rows</a>', answer.text)
        assert more, answer.text
        answer = await lab.client.get(more.group(1).replace("&amp;", "&"))
        assert answer.status_code == 200
        windows += 1
    assert windows == 3
    assert "Searched rows 81 to 120" not in answer.text  # the last window is the end
    assert 'rel="next"' not in answer.text
