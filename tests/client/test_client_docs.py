"""docs/client.md is executed: each ``python`` block, in order and in one namespace, against
a live server (blocks after a ``<!-- not run`` comment are skipped: they need a running
batch). A block that no longer matches the SDK fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.client.table_files import ADDRESSES, hubspot
from tests.support.server import LiveServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"
BLOCK = re.compile(r"(<!-- not run[^>]*-->\n)?```python\n(.*?)```", re.S)


def blocks() -> list[str]:
    return [code for skipped, code in BLOCK.findall(DOC.read_text()) if not skipped]


def test_the_page_has_examples_for_every_method() -> None:
    text = "\n".join(blocks())
    for method in (
        "verify_file",
        "upload",
        "configure",
        "parse",
        "status",
        "details",
        "list_batches",
        "launch",
        "export_to",
        "iter_results",
        "export(",
        "unit",
        "credits",
        "delete",
        "AsyncClient",
        "MockTransport",
    ):
        assert method in text, method


def test_the_examples_run(
    live_server: LiveServer,
    api_key: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APEXVERIFY_URL", live_server.base_url)
    monkeypatch.setenv("APEXVERIFY_API_KEY", api_key)
    (tmp_path / "contacts.txt").write_text("\n".join(ADDRESSES) + "\n")
    hubspot(tmp_path / "contacts.csv")
    namespace: dict[str, object] = {}
    for number, code in enumerate(blocks(), 1):
        try:
            exec(compile(code, f"docs/client.md block {number}", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the failure message
            pytest.fail(f"docs/client.md python block {number} failed: {exc!r}\n{code}")
    printed = capsys.readouterr().out
    assert "did you mean 'use_global_cache'" in printed
    assert "from 1 to 180, not 365" in printed
    for written in ("cleaned.csv", "again.json", "results.xlsx", "good.csv", "results.json"):
        assert (tmp_path / written).stat().st_size > 0, written
