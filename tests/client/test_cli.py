"""The CLI's client commands against a live server, including a real terminal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import openpyxl
import pexpect

from tests.support.server import LiveServer

BIN = str(Path(sys.executable).with_name("apexverify"))


def run(server: LiveServer, key: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**server.env, "APEXVERIFY_URL": server.base_url, "APEXVERIFY_API_KEY": key}
    return subprocess.run(
        [BIN, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def test_verify_writes_xlsx_and_json_and_prints_stats(
    live_server: LiveServer, api_key: str, tmp_path: Path
) -> None:
    source = tmp_path / "c.txt"
    source.write_text("valid@example.com\ninvalid@example.com\nunknown@example.com\n")
    done = run(
        live_server,
        api_key,
        "verify",
        str(source),
        "--type",
        "email",
        "--country",
        "US",
        "--output",
        str(tmp_path / "r.xlsx"),
        "--output",
        str(tmp_path / "r.json"),
        "--yes",
        "--poll",
        "0.05",
    )
    assert done.returncode == 0, done.stderr
    assert "valid" in done.stdout
    assert "net" in done.stderr  # the cost summary
    assert len(json.loads((tmp_path / "r.json").read_text())) == 4  # 3 records + _statistics
    rows = list(openpyxl.load_workbook(tmp_path / "r.xlsx")["Results"].values)
    assert len(rows) == 4


def test_declining_exits_8_and_resume_finishes(
    live_server: LiveServer, api_key: str, tmp_path: Path
) -> None:
    source = tmp_path / "c.txt"
    source.write_text("valid@example.com\n")
    declined = run(live_server, api_key, "verify", str(source), "--poll", "0.05", stdin="n\n")
    assert declined.returncode == 8
    listed = json.loads(run(live_server, api_key, "batches", "list", "--json").stdout)
    batch_uuid = next(
        b["batch_uuid"] for b in listed["batches"] if b["status"] == "ready_for_verification"
    )
    resumed = run(
        live_server, api_key, "verify", "--resume", batch_uuid, "--yes", "--json", "--poll", "0.05"
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["stats"]["total_verification"] == 1
    shown = json.loads(run(live_server, api_key, "batches", "show", batch_uuid, "--json").stdout)
    assert shown["status"] == "verification_done"
    out = tmp_path / "again.json"
    assert (
        run(live_server, api_key, "batches", "export", batch_uuid, "--output", str(out)).returncode
        == 0
    )
    assert "valid@example.com" in json.loads(out.read_text())
    assert run(live_server, api_key, "batches", "delete", batch_uuid).returncode == 0
    assert run(live_server, api_key, "batches", "show", batch_uuid).returncode == 5


def test_credits_unit_and_exit_codes(live_server: LiveServer, api_key: str, tmp_path: Path) -> None:
    credits = json.loads(run(live_server, api_key, "credits", "--json").stdout)
    assert credits == {"email_credit": 1000.0, "phone_credit": 1000.0}
    unit = json.loads(
        run(live_server, api_key, "unit", "+14155550102", "--type", "phone", "--json").stdout
    )
    assert unit["status"] == "dead"
    assert run(live_server, "apx_wrong", "credits").returncode == 3
    poor, _ = live_server.create_account(sandbox=False, email_credits=0)
    source = tmp_path / "c.txt"
    source.write_text("someone@example.com\n")
    short = run(live_server, poor, "verify", str(source), "--yes", "--poll", "0.05")
    assert short.returncode == 4
    assert "credits" in short.stderr


def test_progress_bar_in_a_real_terminal(make_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = make_server(APEXVERIFY_SANDBOX_LATENCY_MS="1000", APEXVERIFY_VERIFY_CHUNK_SIZE="20")
    key, _ = server.create_account()
    source = tmp_path / "c.txt"
    source.write_text("\n".join(f"user{i}@example.com" for i in range(200)))
    env = {
        **server.env,
        "APEXVERIFY_URL": server.base_url,
        "APEXVERIFY_API_KEY": key,
        "TERM": "xterm-256color",
        "COLUMNS": "100",
    }
    child = pexpect.spawn(
        BIN,
        ["verify", str(source), "--poll", "0.2"],
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 100),
    )
    child.expect("Launch and spend these credits")
    child.sendline("y")
    child.expect("Verifying")
    child.expect(r"\d+/200")  # the bar's M/N column while verification runs
    child.expect("Batch ")  # the final stats table
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_ctrl_c_mid_verification_then_resume(make_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = make_server(APEXVERIFY_SANDBOX_LATENCY_MS="1000", APEXVERIFY_VERIFY_CHUNK_SIZE="20")
    key, _ = server.create_account()
    source = tmp_path / "c.txt"
    # 50 chunks of 20 at 1 s, 4 at a time (~13 s): still running when `batches list` (a
    # whole CLI start on a busy machine) looks, as in test_cancel.py.
    source.write_text("\n".join(f"user{i}@example.com" for i in range(1000)))
    env = {**server.env, "APEXVERIFY_URL": server.base_url, "APEXVERIFY_API_KEY": key}
    child = pexpect.spawn(
        BIN,
        ["verify", str(source), "--yes", "--poll", "0.2"],
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 100),
    )
    child.expect("Verifying")
    child.sendintr()
    child.expect(r"Cancel batch [0-9a-f-]{36}\? \[y/N\]")  # the offer; "n" declines it
    child.sendline("n")
    child.expect("Left running")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    listed = json.loads(run(server, key, "batches", "list", "--json").stdout)["batches"]
    assert listed[0]["status"] == "verification_ongoing"  # the server carried on
    out = tmp_path / "r.json"
    resumed = run(
        server,
        key,
        "verify",
        "--resume",
        listed[0]["batch_uuid"],
        "--json",
        "--poll",
        "0.2",
        "--output",
        str(out),
    )
    assert resumed.returncode == 0, resumed.stderr
    assert len(json.loads(out.read_text())) == 1001  # 1000 records + _statistics
