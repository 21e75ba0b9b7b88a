"""The complete end-to-end bash example of the workflow guide, run as written against a live
server with only BASE and API_KEY substituted."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import openpyxl
import pytest

from tests.support.server import LiveServer

GUIDE = Path(__file__).parents[2] / "docs" / "spec" / "batch-verification-workflow.md"
CONTACTS = [
    "valid@example.com",
    "invalid@example.com",
    "unknown@example.org",
    "catchall@corp.example.net",
    "role@shop.example.com",
    "disposable@mailinator.com",
    "jane.doe+news@gmail.com",
]


def guide_script() -> str:
    text = GUIDE.read_text()
    section = text[text.index("## Complete workflow: end-to-end example") :]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


@pytest.mark.skipif(not (shutil.which("jq") and shutil.which("curl")), reason="needs jq and curl")
def test_guide_end_to_end_example_runs_as_written(
    live_server: LiveServer, api_key: str, tmp_path: Path
) -> None:
    script = guide_script()
    script = script.replace('API_KEY="YOUR_API_KEY"', f'API_KEY="{api_key}"', 1)
    script = script.replace(
        'BASE="https://api.apexverify.com"', f'BASE="{live_server.base_url}"', 1
    )
    assert live_server.base_url in script
    assert api_key in script
    (tmp_path / "contacts.txt").write_text("\n".join(CONTACTS) + "\n")
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr

    results = json.loads((tmp_path / "results.json").read_text())
    assert set(CONTACTS) <= set(results)
    assert results["valid@example.com"]["valid"] is True
    assert results["invalid@example.com"]["wrong"] is True
    assert results["unknown@example.org"]["unknown"] is True
    for contact in CONTACTS:
        assert results[contact]["email"] == contact

    workbook = openpyxl.load_workbook(tmp_path / "results.xlsx", read_only=True)
    assert workbook.sheetnames[0] == "Summary"
    rows = list(workbook["Results"].iter_rows(values_only=True))
    assert rows[0][0] == "email"
    assert sorted(r[0] for r in rows[1:]) == sorted(CONTACTS)
