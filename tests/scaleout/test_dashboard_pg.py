"""The dashboard in scale-out mode: PostgreSQL, two API processes, a procrastinate worker.
A session signed by one API process is honoured by the other (shared secret), and the
finished batch's charts come from PostgreSQL's JSON operators."""

from __future__ import annotations

import re
import time

import httpx

from tests.support.dashboard import signed_in, upload
from tests.support.server import LiveServer


def _status(server: LiveServer, api_key: str, batch_uuid: str) -> str:
    answer = httpx.get(
        f"{server.base_url}/v1/batch/{batch_uuid}", headers={"X-API-Key": api_key}, timeout=10
    )
    return str(answer.json()["status"])


def _wait(server: LiveServer, api_key: str, batch_uuid: str, wanted: str) -> None:
    deadline = time.monotonic() + 60
    while _status(server, api_key, batch_uuid) != wanted:
        assert time.monotonic() < deadline, f"{batch_uuid} never reached {wanted}"
        time.sleep(0.3)


def test_dashboard_across_two_api_processes(make_cluster: object) -> None:
    cluster = make_cluster()  # type: ignore[operator]
    first, second = cluster.add_server(), cluster.add_server()
    cluster.add_worker()
    api_key, _ = first.create_account(sandbox=True)
    browser = signed_in(first, api_key)
    lines = [f"valid{i}@example.com" for i in range(30)] + ["invalid@example.com", "x@"]
    answer = upload(browser, ("\n".join(lines) + "\n").encode())
    assert answer.status_code == 303, answer.text
    batch_uuid = answer.headers["location"].rsplit("/", 1)[1]
    _wait(first, api_key, batch_uuid, "ready_for_verification")

    # The same cookies, sent to the other API process.
    browser.base_url = httpx.URL(second.base_url)
    page = browser.get(f"/batches/{batch_uuid}")
    assert page.status_code == 200, cluster.logs()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    launched = browser.post(f"/batches/{batch_uuid}/launch", data={"csrf_token": token})
    assert launched.status_code == 303
    _wait(second, api_key, batch_uuid, "verification_done")
    html = browser.get(f"/batches/{batch_uuid}").text
    assert dict(re.findall(r'data-breakdown="([a-z]+)">(\d+)<', html)) == {"good": "30", "bad": "1"}
    xlsx = browser.get(f"/batches/{batch_uuid}/export?format=xlsx")
    assert xlsx.status_code == 200
    assert xlsx.content[:2] == b"PK"
    browser.close()
