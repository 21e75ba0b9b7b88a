"""``apexverify verify`` as a list cleaner uses it (issue #16): spreadsheets in, the output
format from ``--output``'s extension, ``--keep``, results next to the input, clear messages
for a missing file or key, and the cost question visible in a real terminal before the
progress bar."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import openpyxl
import pexpect
import pytest

from tests.client.table_files import ADDRESSES, TABLES
from tests.client.test_cli import BIN, run
from tests.support.server import LiveServer

FAST = ("--yes", "--poll", "0.05")


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text


def test_a_missing_file_or_a_folder_is_a_usage_error(
    live_server: LiveServer, api_key: str, tmp_path: Path
) -> None:
    missing = run(live_server, api_key, "verify", str(tmp_path / "nope.csv"), *FAST)
    assert missing.returncode == 2
    assert f"no such file: {tmp_path / 'nope.csv'}" in missing.stderr
    _no_traceback(missing.stderr)
    folder = run(live_server, api_key, "verify", str(tmp_path), *FAST)
    assert folder.returncode == 2
    assert "not a file" in folder.stderr
    _no_traceback(folder.stderr)
    source = tmp_path / "bad-arguments.txt"  # a name no other test uploads
    source.write_text("valid@example.com\n")
    bad_keep = run(live_server, api_key, "verify", str(source), "--keep", "good", *FAST)
    assert bad_keep.returncode == 2
    assert (
        "keep: 'good' is not one of deliverable, risky, undeliverable, unknown" in bad_keep.stderr
    )
    bad_output = run(live_server, api_key, "verify", str(source), "--output", "r.txt", *FAST)
    assert bad_output.returncode == 2
    assert "the extension must be .csv, .xlsx or .json" in bad_output.stderr
    listed = json.loads(run(live_server, api_key, "batches", "list", "--json").stdout)
    assert source.name not in {b["name"] for b in listed["batches"]}  # nothing was uploaded


def test_a_missing_or_refused_key_names_the_variable(
    live_server: LiveServer, tmp_path: Path
) -> None:
    source = tmp_path / "c.txt"
    source.write_text("valid@example.com\n")
    unset = run(live_server, "", "verify", str(source), *FAST)
    assert unset.returncode == 2
    assert "APEXVERIFY_API_KEY" in unset.stderr
    _no_traceback(unset.stderr)
    assert run(live_server, "", "credits").returncode == 2
    refused = run(live_server, "apx_wrong", "credits")
    assert refused.returncode == 3
    assert "APEXVERIFY_API_KEY" in refused.stderr


def test_without_output_the_results_go_next_to_the_input(
    live_server: LiveServer, api_key: str, tmp_path: Path
) -> None:
    source = tmp_path / "contacts.txt"
    source.write_text("\n".join(ADDRESSES) + "\n")
    done = run(live_server, api_key, "verify", str(source), *FAST)
    assert done.returncode == 0, done.stderr
    target = tmp_path / "contacts.results.json"
    assert f"wrote {target}" in done.stdout
    assert set(ADDRESSES) <= set(json.loads(target.read_text()))
    assert "Parsed: 4 accepted" in done.stderr  # parse counts are accepted rows


def test_output_csv_writes_csv_and_keep_filters(
    live_server: LiveServer, api_key: str, tmp_path: Path
) -> None:
    source = tmp_path / "contacts.txt"
    source.write_text("\n".join(ADDRESSES) + "\n")
    everything, kept = tmp_path / "all.csv", tmp_path / "good.csv"
    done = run(
        live_server, api_key, "verify", str(source), "--output", str(everything), "--json", *FAST
    )
    assert done.returncode == 0, done.stderr
    batch_uuid = json.loads(done.stdout)["batch_uuid"]
    rows = list(csv.DictReader(io.StringIO(everything.read_text(encoding="utf-8-sig"))))
    assert len(rows) == len(ADDRESSES)
    assert "decision" in rows[0]
    exported = run(
        live_server,
        api_key,
        "batches",
        "export",
        batch_uuid,
        "--output",
        str(kept),
        "--keep",
        "deliverable",
    )
    assert exported.returncode == 0, exported.stderr
    good = list(csv.DictReader(io.StringIO(kept.read_text(encoding="utf-8-sig"))))
    assert {r["decision"] for r in good} == {"deliverable"}
    assert len(good) == sum(r["decision"] == "deliverable" for r in rows) > 0


@pytest.mark.parametrize("kind", sorted(TABLES))
def test_spreadsheets_become_batches_with_the_right_counts(
    live_server: LiveServer, api_key: str, tmp_path: Path, kind: str
) -> None:
    name, write, column = TABLES[kind]
    source = write(tmp_path / name)
    done = run(live_server, api_key, "verify", str(source), "--json", *FAST)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["stats"]["total_verification"] == len(ADDRESSES)
    # Written next to the input, in the input's kind of format, merged with its columns.
    (output,) = answer["outputs"]
    target = Path(output)
    assert target.parent == tmp_path
    assert target.suffix == (".xlsx" if kind == "xlsx" else ".csv")
    if target.suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8-sig"))))
        values = [r[column] for r in rows]
    else:
        sheet = openpyxl.load_workbook(target).worksheets[-1]
        header, *data = list(sheet.values)
        values = [row[header.index(column)] for row in data]
    assert values == ADDRESSES  # every original row, in order


def test_a_chosen_column_and_keep_on_a_spreadsheet(
    live_server: LiveServer, api_key: str, tmp_path: Path
) -> None:
    source = TABLES["hubspot"][1](tmp_path / "hubspot.csv")
    cleaned = tmp_path / "cleaned.csv"
    done = run(
        live_server,
        api_key,
        "verify",
        str(source),
        "--column",
        "Email",
        "--output",
        str(cleaned),
        "--keep",
        "deliverable,risky",
        *FAST,
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(cleaned.read_text(encoding="utf-8-sig"))))
    assert rows
    assert {r["decision"] for r in rows} <= {"deliverable", "risky"}
    assert {"First Name", "Last Name", "Email", "Company"} <= set(rows[0])
    assert "invalid@example.com" not in {r["Email"] for r in rows}


def test_the_cost_question_is_visible_before_the_progress_bar(
    live_server: LiveServer, api_key: str, tmp_path: Path
) -> None:
    source = tmp_path / "c.txt"
    source.write_text("\n".join(f"user{i}@example.com" for i in range(50)))
    env = {
        **live_server.env,
        "APEXVERIFY_URL": live_server.base_url,
        "APEXVERIFY_API_KEY": api_key,
        "TERM": "xterm-256color",
    }
    child = pexpect.spawn(
        BIN,
        ["verify", str(source), "--poll", "0.2", "--output", str(tmp_path / "r.json")],
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 100),
    )
    child.expect(r"Parsed: 50 accepted")
    child.expect(r"Launch and spend these credits\? \[y/N\] ")
    shown = child.before + child.after
    assert "Verifying" not in shown  # the bar has not started yet
    # Nothing redraws over the question while it waits for the answer: no cursor moves,
    # no erased lines (a live display would repaint every 0.1 s).
    child.expect(pexpect.TIMEOUT, timeout=1.5)
    assert "\x1b[2K" not in child.before
    assert "\x1b[1A" not in child.before
    child.sendline("y")
    child.expect("Verifying")
    child.expect("Batch ")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
