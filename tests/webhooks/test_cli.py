"""``apexverify webhook ...`` in process, on a lab's database and secret key: add (the secret
printed once), list, deliveries, remove, and the refusals as errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apexverify.cli.main import main
from apexverify.webhooks import signing
from apexverify.webhooks.repository import endpoint_of
from tests.support.fast import open_lab

pytestmark = pytest.mark.fast


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["webhook", *args])
    out, err = capsys.readouterr()
    return code, out, err


async def test_the_webhook_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with open_lab(tmp_path) as lab:
        account, _key = lab.account()
        monkeypatch.setenv("APEXVERIFY_DATABASE_URL", lab.services.settings.database_url)
        monkeypatch.setenv("APEXVERIFY_DATA_DIR", str(lab.services.settings.data_dir))

        code, out, _ = run(
            capsys, "add", "--account", account, "https://hooks.invalid/a",
            "--event", "batch.internal_error", "--description", "ops", "--json",
        )  # fmt: skip
        assert code == 0
        added = json.loads(out)
        assert added["events"] == ["batch.internal_error"]
        # Sealed with the server's key: the server opens what the CLI stored.
        with lab.services.store.read() as session:
            row = endpoint_of(session, account, added["id"])
            assert row is not None
            assert added["secret"] not in row.secret
            assert signing.unseal(lab.services.secret, row.id, row.secret) == added["secret"]

        code, out, _ = run(capsys, "list", "--account", account)
        assert code == 0
        assert added["id"] in out
        assert "whsec_" not in out
        code, out, _ = run(capsys, "deliveries", "--account", account, added["id"])
        assert (code, out.strip()) == (0, "no deliveries yet")

        code, _out, err = run(capsys, "add", "--account", account, "http://10.0.0.5/x")
        assert code == 1
        assert "10.0.0.5 is a private address" in err
        code, _out, err = run(capsys, "add", "--account", "no-such-account", "https://a.invalid")
        assert code == 1
        assert "error:" in err

        code, out, _ = run(capsys, "remove", "--account", account, added["id"])
        assert (code, out.strip()) == (0, f"removed webhook {added['id']}")
        code, _out, err = run(capsys, "remove", "--account", account, added["id"])
        assert code == 1
        assert "No webhook endpoint" in err
        code, out, _ = run(capsys, "list", "--account", account, "--json")
        assert json.loads(out) == []
