"""End to end in headless Chromium: sign in, upload, launch, watch progress reach done,
download the XLSX, manage keys, revoke the session's key and be signed out.

Screenshots of every page at desktop and phone width go to build/screenshots/ (not committed).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import openpyxl
import pytest

from tests.support.server import LiveServer

from .conftest import SCREENSHOTS

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Sandbox verdicts are decided by the local part (docs/sandbox.md).
VALID, WRONG, UNKNOWN = 240, 60, 30


def _list_file(path: Path) -> Path:
    lines = [f"valid{i}@example.com" for i in range(VALID)]
    lines += [f"invalid+{i}@example.com" for i in range(WRONG)]
    lines += [f"unknown+{i}@example.com" for i in range(UNKNOWN)]
    lines += ["valid0@example.com", "valid1@example.com"]  # two duplicates
    lines += ["not-an-email", "@nope"]  # two malformed rows
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def page(browser: Any, dash_server: LiveServer) -> Iterator[Any]:
    context = browser.new_context(
        viewport=DESKTOP, base_url=dash_server.base_url, accept_downloads=True
    )
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    context.close()


def shoot(page: Any, name: str) -> None:
    """Save the page at desktop and phone width, and check nothing overflows sideways."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    page.screenshot(path=str(SCREENSHOTS / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size(DESKTOP)
    assert overflow <= 0, f"{name}: {overflow}px of horizontal overflow at phone width"
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
              .filter(el => el.labels.length === 0 && !el.getAttribute('aria-label'))
              .map(el => el.name || el.id)"""
    )
    assert unlabelled == [], f"{name}: fields without a label: {unlabelled}"


def sign_in(page: Any, api_key: str) -> None:
    page.goto("/")
    assert "/signin" in page.url
    # Keyboard only: the key field takes focus on arrival (autofocus is applied at the next
    # rendering step, so wait for it), Enter submits.
    page.wait_for_function("document.activeElement && document.activeElement.id === 'api_key'")
    page.keyboard.type(api_key)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: urlsplit(url).path == "/")


# The bar's value while the page shows "Verifying", else null.
VERIFYING_PROGRESS = """() => {
  const verifying = [...document.querySelectorAll("h1, h2, h3")].some(
    (h) => h.textContent.includes("Verifying"));
  const bar = document.querySelector("#progress");
  return verifying && bar ? Number(bar.getAttribute("value") || 0) : null;
}"""


def test_upload_launch_progress_download(
    page: Any, dash_server: LiveServer, tmp_path: Path
) -> None:
    api_key, _ = dash_server.create_account(sandbox=True)
    page.goto("/")
    page.wait_for_url(re.compile(r"/signin\?next=/$"))
    shoot(page, "01-signin")
    sign_in(page, api_key)
    assert page.get_by_role("heading", name="Batches").is_visible()
    shoot(page, "02-batches-empty")

    page.get_by_role("link", name="Upload a list").first.click()
    page.wait_for_url(re.compile(r"/batches/new$"))
    shoot(page, "03-upload")
    page.get_by_label("File").set_input_files(str(_list_file(tmp_path / "list.txt")))
    page.get_by_label("Name").fill("Spring campaign")
    page.get_by_label("Emails").check()
    page.get_by_label("Target country").fill("SG")
    page.get_by_label("Audience").select_option(label="17 · Marketing & Sales Professionals")
    page.get_by_label("Campaign objective").select_option("6")
    page.get_by_role("button", name="Upload and parse").click()

    page.wait_for_url(re.compile(r"/batches/[0-9a-f-]{36}$"))
    batch_uuid = page.url.rsplit("/", 1)[1]
    # Parsing finishes in the background; the page reloads itself when it does.
    page.get_by_role("heading", name="Ready to verify").wait_for()
    assert page.locator("[data-found=valid]").inner_text() == str(VALID + WRONG + UNKNOWN)
    assert page.locator("[data-found=duplicate]").inner_text() == "2"
    assert page.locator("[data-found=wrong]").inner_text() == "2"
    assert "17 · Marketing & Sales Professionals" in page.inner_text("main")
    shoot(page, "04-batch-ready")
    page.get_by_role("link", name="Change parameters").click()
    assert page.get_by_label("Audience").input_value() == "17"
    shoot(page, "04b-parameters")
    page.get_by_role("link", name="Cancel").click()

    page.get_by_role("link", name="Launch verification…").click()
    page.get_by_role("heading", name="Launch verification?").wait_for()
    shoot(page, "05-launch-confirm")
    page.get_by_role("button", name="Confirm and launch").click()

    page.get_by_role("heading", name="Verifying").wait_for()
    total = VALID + WRONG + UNKNOWN
    seen: list[int] = []
    while True:
        # The heading and the bar read in one script: read apart, the page could reload into
        # "done" (whose bar is value=1 of max=1) between the two, which read as going back.
        try:
            value = page.evaluate(VERIFYING_PROGRESS)
        except Exception:  # the page was reloading
            value = None
        if value is None:
            break
        seen.append(int(value))
        if 0 < seen[-1] < total and not any(0 < v < total for v in seen[:-1]):
            shoot(page, "06-batch-verifying")
        page.wait_for_timeout(250)
    page.get_by_role("heading", name="Verification done").wait_for()
    assert any(0 < v < total for v in seen), f"no intermediate progress seen: {seen}"
    assert seen == sorted(seen), "progress went backwards"
    done_bar = page.locator("#progress")
    assert done_bar.get_attribute("value") == done_bar.get_attribute("max")
    assert page.locator("[data-verdict=valid]").inner_text() == str(VALID)
    assert page.locator("[data-verdict=wrong]").inner_text() == str(WRONG)
    assert page.locator("[data-verdict=unknown]").inner_text() == str(UNKNOWN)
    assert page.locator("[data-breakdown=good]").inner_text() == str(VALID)
    shoot(page, "07-batch-done")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download XLSX").click()
    download = download_info.value
    assert download.suggested_filename == f"apexverify-{batch_uuid}.xlsx"
    saved = tmp_path / "results.xlsx"
    download.save_as(saved)
    workbook = openpyxl.load_workbook(saved, read_only=True)
    values = {
        row[0]
        for sheet in workbook.worksheets[1:]
        for row in sheet.iter_rows(min_row=2, values_only=True)
    }
    assert {"valid0@example.com", "invalid+0@example.com", "unknown+0@example.com"} <= values

    with page.expect_download() as json_info:
        page.get_by_role("link", name="Download JSON").click()
    assert json_info.value.suggested_filename.endswith(".json")

    page.goto("/")
    row = page.get_by_role("row", name=re.compile("Spring campaign"))
    assert "verification done" in row.inner_text()
    shoot(page, "08-batches")

    page.goto(f"/batches/{batch_uuid}")
    page.get_by_role("link", name="Delete batch…").click()
    shoot(page, "09-delete-confirm")
    page.get_by_role("button", name="Delete for good").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/")
    assert "Spring campaign" not in page.inner_text("main")


def test_keys_and_revoking_the_session_key_signs_out(page: Any, dash_server: LiveServer) -> None:
    first_key, _ = dash_server.create_account(sandbox=True)
    sign_in(page, first_key)
    page.get_by_role("link", name="Credits & keys").click()
    page.get_by_label("Label for a new key").fill("n8n production")
    page.get_by_role("button", name="Create key").click()
    new_key = page.get_by_label("New API key").input_value()
    assert new_key.startswith("apx_")
    shoot(page, "10-account-new-key")
    # Shown once: a reload shows only the prefix.
    page.goto("/account")
    assert new_key not in page.content()
    assert new_key[:10] in page.content()
    assert httpx.get(
        f"{dash_server.base_url}/v1/account/credits", headers={"X-API-Key": new_key}
    ).is_success

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/signin$"))
    sign_in(page, new_key)
    page.goto("/account")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke key n8n production").click()
    page.wait_for_url(re.compile(r"/signin\?revoked=1$"))
    assert "has been revoked" in page.inner_text("main")
    shoot(page, "11-signed-out-revoked")
    page.goto("/")
    assert "/signin" in page.url
    assert (
        httpx.get(
            f"{dash_server.base_url}/v1/account/credits", headers={"X-API-Key": new_key}
        ).status_code
        == 401
    )


def test_a_key_revoked_elsewhere_signs_the_browser_out(page: Any, dash_server: LiveServer) -> None:
    api_key, _ = dash_server.create_account(sandbox=True)
    sign_in(page, api_key)
    headers = {"X-API-Key": api_key}
    keys = httpx.get(f"{dash_server.base_url}/v1/account/keys", headers=headers).json()["keys"]
    revoked = httpx.delete(
        f"{dash_server.base_url}/v1/account/keys/{keys[0]['id']}", headers=headers
    )
    assert revoked.is_success
    page.reload()
    assert "/signin" in page.url
