"""The results table over plain HTTP: filters, search, paging links, decision chips, bad
parameters answered with a 400 page, the batch list's Valid column as a verdict count (not the
parse count) and "accepted rows" for the parse figures."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openpyxl
import pytest

from apexverify.export.json_export import STATISTICS_KEY
from tests.support.dashboard import signed_in
from tests.support.server import LiveServer

# Sandbox local parts decide (docs/sandbox.md).
LINES = (
    [f"valid+{i}@example.com" for i in range(60)]
    + [f"invalid+{i}@example.com" for i in range(20)]
    + [f"role+{i}@gmail.com" for i in range(5)]
    + [f"catchall+{i}@example.org" for i in range(5)]
    + [f"unknown+{i}@example.net" for i in range(10)]
)
ROW = re.compile(
    r'<tr data-seq="(\d+)">\s*<td[^>]*>\d+</td>\s*<th scope="row" class="value">([^<]+)</th>'
)


def api(server: LiveServer, key: str, method: str, path: str, **kw: object) -> httpx.Response:
    return httpx.request(
        method, f"{server.base_url}{path}", headers={"X-API-Key": key}, timeout=15, **kw
    )


def _wait(server: LiveServer, key: str, batch_uuid: str, wanted: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if api(server, key, "GET", f"/v1/batch/{batch_uuid}").json()["status"] == wanted:
            return
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_uuid} never reached {wanted}")


@pytest.fixture(scope="module")
def done(dash_server: LiveServer) -> Iterator[tuple[httpx.Client, str]]:
    key, _ = dash_server.create_account(sandbox=True)
    answer = api(
        dash_server,
        key,
        "POST",
        "/v1/batch",
        data={"name": "mixed", "type": "email", "target_country": "US"},
        files={"file": ("l.txt", ("\n".join(LINES) + "\n").encode(), "text/plain")},
    )
    batch_uuid = answer.json()["batch_uuid"]
    _wait(dash_server, key, batch_uuid, "ready_for_verification")
    assert api(dash_server, key, "POST", f"/v1/batch/{batch_uuid}").is_success
    _wait(dash_server, key, batch_uuid, "verification_done")
    client = signed_in(dash_server, key)
    yield client, batch_uuid
    client.close()


def _values(html: str) -> list[str]:
    return [value for _seq, value in ROW.findall(html)]


def test_filters_and_search(done: tuple[httpx.Client, str]) -> None:
    client, batch_uuid = done
    base = f"/batches/{batch_uuid}/results"
    everything = client.get(base)
    assert everything.status_code == 200
    assert _values(everything.text) == LINES[:50]  # first page, file order
    # The counts come apart (a scan of the batch); once known, the page shows them itself.
    assert client.get(f"{base}/counts").json() == {
        "deliverable": 60,
        "risky": 10,
        "undeliverable": 20,
        "unknown": 10,
    }
    everything = client.get(base)
    chips = dict(
        re.findall(
            r'data-chip="([a-z]+)"[^>]*>[A-Za-z]+ <span class="count" data-count="[a-z]+">(\d+)<',
            everything.text,
        )
    )
    assert chips == {"deliverable": "60", "risky": "10", "undeliverable": "20", "unknown": "10"}

    assert _values(client.get(base, params={"decision": "undeliverable"}).text) == LINES[60:80]
    risky = _values(client.get(base, params={"decision": "risky"}).text)
    assert risky == LINES[80:90]
    assert _values(client.get(base, params={"flag": "is_role"}).text) == LINES[80:85]
    both = client.get(base, params=[("quality", "risky"), ("verdict", "unknown")])
    assert _values(both.text) == LINES[85:90]
    assert _values(client.get(base, params={"q": "GMAIL.COM"}).text) == LINES[80:85]
    nothing = client.get(base, params={"q": "no-such-thing"})
    assert nothing.status_code == 200
    assert _values(nothing.text) == []
    assert "No matching row" in nothing.text


def test_pages_link_on_and_back(done: tuple[httpx.Client, str]) -> None:
    client, batch_uuid = done
    base = f"/batches/{batch_uuid}/results"
    first = client.get(base).text
    next_link = re.search(r'<a href="([^"]+)" rel="next">', first)
    assert next_link
    second = client.get(next_link.group(1).replace("&amp;", "&")).text
    assert _values(second) == LINES[50:100]
    assert 'rel="next"' not in second
    prev_link = re.search(r'<a href="([^"]+)" rel="prev">', second)
    assert prev_link
    assert _values(client.get(prev_link.group(1).replace("&amp;", "&")).text) == LINES[:50]
    assert _values(client.get(base, params={"size": "100"}).text) == LINES


@pytest.mark.parametrize(
    "params",
    [
        {"decision": "great"},
        {"verdict": "maybe"},
        {"flag": "is_ported"},
        {"size": "7"},
        {"size": "many"},
        {"after": "x"},
        {"q": "x" * 500},
    ],
)
def test_bad_parameters_get_a_400_page(
    done: tuple[httpx.Client, str], params: dict[str, str]
) -> None:
    client, batch_uuid = done
    answer = client.get(f"/batches/{batch_uuid}/results", params=params)
    # A malformed value (not a number) is "no such page" (404) as for every dashboard page.
    assert answer.status_code in (400, 404), answer.text
    assert "text/html" in answer.headers["content-type"]


def test_unknown_batch_is_a_404_page(done: tuple[httpx.Client, str]) -> None:
    client, _ = done
    answer = client.get("/batches/00000000-0000-0000-0000-000000000000/results")
    assert answer.status_code == 404


def test_valid_means_verified_everywhere(done: tuple[httpx.Client, str]) -> None:
    client, batch_uuid = done
    listing = client.get("/").text
    row = listing[listing.index(f"/batches/{batch_uuid}") :]
    accepted = re.search(r"data-accepted>([\d,]+)<", row)
    valid = re.search(r"data-valid>([\d,]+)<", row)
    wrong = re.search(r"data-wrong>([\d,]+)<", row)
    assert accepted
    assert valid
    assert wrong
    # 100 accepted rows; the sandbox says 65 valid (60 + 5 role), 20 wrong.
    assert (accepted.group(1), valid.group(1), wrong.group(1)) == ("100", "65", "20")
    page = client.get(f"/batches/{batch_uuid}").text
    assert "Accepted rows" in page
    assert not re.search(r"Valid (email|phone)s", page)


def test_filtered_downloads_hold_exactly_the_matching_rows(
    done: tuple[httpx.Client, str], tmp_path: Path
) -> None:
    client, batch_uuid = done
    export = f"/batches/{batch_uuid}/results/export"
    query = [("decision", "risky"), ("q", "GMAIL")]
    expected = LINES[80:85]
    as_json = client.get(export, params=[*query, ("format", "json")])
    assert as_json.status_code == 200
    # Keyed by value, in file order; the statistics object (its own key) last.
    keys = [key for key in as_json.json() if key != STATISTICS_KEY]
    assert keys == expected
    as_xlsx = client.get(export, params=[*query, ("format", "xlsx")])
    assert as_xlsx.status_code == 200
    path = tmp_path / "f.xlsx"
    path.write_bytes(as_xlsx.content)
    sheet = openpyxl.load_workbook(path, read_only=True).worksheets[-1]
    values = [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert values == expected
    as_csv = client.get(export, params=[*query, ("format", "csv")])
    rows = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert [row[0] for row in rows[1:]] == expected
    refused = client.get(export, params=[("format", "pdf")])
    assert refused.status_code in (400, 404)


def test_a_phone_batch_shows_line_types_and_the_ported_flag(dash_server: LiveServer) -> None:
    key, _ = dash_server.create_account(sandbox=True)
    # Sandbox phones: the last digit decides (0 live, 1 live and ported, 2 dead, 4 landline).
    numbers = ["+14155550100", "+14155550101", "+14155550102", "+14155550104"]
    answer = api(
        dash_server,
        key,
        "POST",
        "/v1/batch",
        data={"name": "phones", "type": "phone", "target_country": "US"},
        files={"file": ("p.txt", ("\n".join(numbers) + "\n").encode(), "text/plain")},
    )
    batch_uuid = answer.json()["batch_uuid"]
    _wait(dash_server, key, batch_uuid, "ready_for_verification")
    assert api(dash_server, key, "POST", f"/v1/batch/{batch_uuid}").is_success
    _wait(dash_server, key, batch_uuid, "verification_done")
    client = signed_in(dash_server, key)
    base = f"/batches/{batch_uuid}/results"
    page = client.get(base)
    assert page.status_code == 200
    assert "Line type" in page.text
    assert 'id="quality_good"' not in page.text  # phones have no quality filter
    assert _values(client.get(base, params={"flag": "is_ported"}).text) == ["+14155550101"]
    dead = client.get(base, params={"decision": "undeliverable"})
    assert _values(dead.text) == ["+14155550102"]
    assert client.get(base, params={"quality": "good"}).status_code == 400
    assert client.get(f"{base}/counts").json() == {"deliverable": 3, "undeliverable": 1}
    client.close()
