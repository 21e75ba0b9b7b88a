"""Spreadsheets through the dashboard in headless Chromium (#16): HubSpot, Mailchimp, BOM+CRLF,
semicolon CSVs and an XLSX become batches with the right counts; a refused upload keeps the
chosen file selected (and the other fields); the results table filters and searches; the
filtered download holds exactly the rows the table shows."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import table_files
from tests.support.server import LiveServer
from tests.support.table_files import TableFile

from .conftest import SCREENSHOTS
from .test_browser import DESKTOP, shoot, sign_in

pytestmark = pytest.mark.browser


def bom_crlf_csv() -> TableFile:
    """A one-column export with a BOM, CRLF line ends and an ``Email`` header row."""
    rows = [["a@example.com"], ["b@example.com"], ["a@example.com"], ["nope"]]
    content = b"\xef\xbb\xbfEmail\r\n" + b"".join(r[0].encode() + b"\r\n" for r in rows)
    return TableFile("bom-crlf.csv", content, ["Email"], rows, valid=2, wrong=1, duplicate=1)


FILES: dict[str, Callable[[Path], TableFile]] = {
    "hubspot": lambda _tmp: table_files.hubspot_csv(),
    "mailchimp": lambda _tmp: table_files.mailchimp_csv(),
    "bom-crlf": lambda _tmp: bom_crlf_csv(),
    "semicolon": lambda _tmp: table_files.semicolon_csv(),
    "xlsx": table_files.xlsx,
}


@pytest.fixture
def page(browser: Any, dash_server: LiveServer) -> Iterator[Any]:
    context = browser.new_context(
        viewport=DESKTOP, base_url=dash_server.base_url, accept_downloads=True
    )
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    yield opened
    context.close()


def _file(tmp_path: Path, table: TableFile) -> Path:
    path = tmp_path / table.name
    path.write_bytes(table.content)
    return path


def _counts(page: Any) -> tuple[int, int, int]:
    return tuple(  # type: ignore[return-value]
        int(page.locator(f"[data-found={name}]").inner_text().replace(",", ""))
        for name in ("valid", "wrong", "duplicate")
    )


@pytest.mark.parametrize("kind", list(FILES))
def test_table_files_become_batches_with_the_right_counts(
    page: Any, dash_server: LiveServer, tmp_path: Path, kind: str
) -> None:
    table = FILES[kind](tmp_path)
    api_key, _ = dash_server.create_account(sandbox=True)
    sign_in(page, api_key)
    page.goto("/batches/new")
    assert page.get_by_label("File").get_attribute("accept").startswith(".txt,.csv,.tsv,.xlsx,.ods")
    page.get_by_label("File").set_input_files(str(_file(tmp_path, table)))
    page.get_by_label("Name").fill(f"{kind} import")
    # Column left empty: a table file is read with column=auto.
    page.get_by_role("button", name="Upload and parse").click()
    page.wait_for_url(re.compile(r"/batches/[0-9a-f-]{36}$"))
    page.get_by_role("heading", name="Ready to verify").wait_for()
    assert _counts(page) == (table.valid, table.wrong, table.duplicate)


def test_a_refused_upload_keeps_the_file_selected(
    page: Any, dash_server: LiveServer, tmp_path: Path
) -> None:
    table = table_files.hubspot_csv()
    api_key, _ = dash_server.create_account(sandbox=True)
    sign_in(page, api_key)
    page.goto("/batches/new")
    page.get_by_label("File").set_input_files(str(_file(tmp_path, table)))
    page.get_by_label("Name").fill("HubSpot, wrong column")
    page.get_by_label("Column").fill("E-mail address")  # no such header
    page.get_by_label("Target country").fill("GB")
    page.get_by_role("button", name="Upload and parse").click()
    refusal = page.locator("#upload-refused")
    refusal.wait_for()
    assert "E-mail address" in refusal.inner_text()
    assert page.url.endswith("/batches/new")
    # The same file is still chosen, and every field kept what was typed.
    chosen = page.evaluate("document.getElementById('file').files[0]?.name ?? null")
    assert chosen == table.name
    assert page.get_by_label("Name").input_value() == "HubSpot, wrong column"
    assert page.get_by_label("Column").input_value() == "E-mail address"
    assert page.get_by_label("Target country").input_value() == "GB"
    shoot(page, "20-upload-refused-file-kept")
    # Fixing the column is enough: no need to choose the file again.
    page.get_by_label("Column").fill("Email")
    page.get_by_role("button", name="Upload and parse").click()
    page.wait_for_url(re.compile(r"/batches/[0-9a-f-]{36}$"))
    page.get_by_role("heading", name="Ready to verify").wait_for()
    assert _counts(page) == (table.valid, table.wrong, table.duplicate)


# Sandbox local parts decide (docs/sandbox.md).
MIXED = (
    [f"valid+{i}@example.com" for i in range(12)]
    + [f"invalid+{i}@example.com" for i in range(6)]
    + [f"role+{i}@gmail.com" for i in range(3)]
    + [f"catchall+{i}@example.org" for i in range(3)]
    + [f"unknown+{i}@example.net" for i in range(4)]
)


def _done_batch(server: LiveServer, api_key: str) -> str:
    headers = {"X-API-Key": api_key}
    answer = httpx.post(
        f"{server.base_url}/v1/batch",
        headers=headers,
        data={"name": "mixed", "type": "email", "target_country": "US"},
        files={"file": ("m.txt", ("\n".join(MIXED) + "\n").encode(), "text/plain")},
        timeout=15,
    )
    batch_uuid = str(answer.json()["batch_uuid"])
    for wanted in ("ready_for_verification", "verification_done"):
        deadline = time.monotonic() + 60
        while True:
            url = f"{server.base_url}/v1/batch/{batch_uuid}"
            if httpx.get(url, headers=headers, timeout=15).json()["status"] == wanted:
                break
            assert time.monotonic() < deadline, f"never {wanted}"
            time.sleep(0.2)
        if wanted == "ready_for_verification":
            assert httpx.post(url, headers=headers, timeout=15).is_success
    return batch_uuid


def _shown(page: Any) -> list[str]:
    return [text.strip() for text in page.locator("table.results tbody th.value").all_inner_texts()]


def _csv_values(path: Path) -> list[str]:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    return [row[0] for row in rows[1:]]


def test_results_table_filters_searches_and_downloads_the_filtered_rows(
    page: Any, dash_server: LiveServer, tmp_path: Path
) -> None:
    api_key, _ = dash_server.create_account(sandbox=True)
    batch_uuid = _done_batch(dash_server, api_key)
    sign_in(page, api_key)
    page.goto(f"/batches/{batch_uuid}")
    page.get_by_role("link", name="Results table, filters and CSV").click()
    page.wait_for_url(re.compile(r"/results$"))
    assert _shown(page) == MIXED
    # The chips' counts arrive apart.
    page.wait_for_selector("nav[data-counts-loaded=true]")
    assert page.locator('[data-count="risky"]').inner_text() == "6"
    assert page.locator('[data-count="all"]').inner_text() == str(len(MIXED))
    shoot(page, "21-results-table")

    page.get_by_role("link", name=re.compile(r"^Undeliverable")).click()
    page.wait_for_url(re.compile(r"decision=undeliverable"))
    assert _shown(page) == MIXED[12:18]

    page.get_by_role("link", name="Clear filters").click()
    page.get_by_label("Search addresses").fill("GMAIL")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"q=GMAIL"))
    assert _shown(page) == MIXED[18:21]

    page.get_by_label("Search addresses").fill("")
    page.locator("#decision_risky").check()
    page.locator("#flag_is_catch_all").check()
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"flag=is_catch_all"))
    expected = MIXED[21:24]
    assert _shown(page) == expected
    shoot(page, "22-results-filtered")

    with page.expect_download() as info:
        page.locator("[data-download=csv]").click()
    saved = tmp_path / "filtered.csv"
    info.value.save_as(saved)
    assert _csv_values(saved) == expected

    with page.expect_download() as info:
        page.locator("[data-quick='deliverable,risky']").click()
    saved = tmp_path / "keep.csv"
    info.value.save_as(saved)
    assert _csv_values(saved) == MIXED[:12] + MIXED[18:24]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
