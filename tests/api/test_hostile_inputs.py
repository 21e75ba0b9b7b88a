"""A corpus of hostile uploads and parameters: documented errors, never a 500, nothing lost."""

from __future__ import annotations

import codecs

import httpx
import openpyxl
import pytest

from tests.api.helpers import Api
from tests.support.server import LiveServer

GOOD = "valid@example.com\ninvalid@example.com\n"


@pytest.fixture(scope="module")
def api(live_server: LiveServer, api_key: str) -> Api:
    return Api(live_server.base_url, api_key)


@pytest.fixture(scope="module")
def stored(api: Api) -> tuple[str, dict, dict]:
    """A finished batch and the balances, to prove the corpus damages nothing."""
    batch_uuid = api.run(GOOD)
    return batch_uuid, api.export_json(batch_uuid), api.client.get("/v1/account/credits").json()


FILES = {
    "binary": bytes(range(256)) * 8,
    "utf8 bom": codecs.BOM_UTF8 + GOOD.encode(),
    "utf16": GOOD.encode("utf-16"),
    "utf16 without bom": GOOD.encode("utf-16-le"),
    "nul byte": b"valid@example.com\x00\n",
    "latin-1": "jos\xe9@example.com\n".encode("latin-1"),
    "empty": b"",
    "blank lines only": b"\n   \n\t\n",
    "csv with header": b"email,name\nvalid@example.com,Val\n",
    "header line": b"Email Address\nvalid@example.com\n",
    "semicolons": b"valid@example.com;x\n",
    "quoted": b'"valid@example.com"\n',
    "one 10 MB line": b"a" * (10 * 1024 * 1024),
    "truncated utf8": "valid@example.com\nj\xf6rg@example.com".encode()[:-15],
}


@pytest.mark.parametrize("name", list(FILES))
def test_bad_files_are_parse_errors(api: Api, stored: tuple, name: str) -> None:
    response = api.upload(FILES[name])
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status"] == "parse_error"
    assert body["message"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "x" * 5000}, "name"),
        ({"name": ""}, "name"),
        ({"target_country": "XX"}, "target_country"),
        ({"target_country": "USA"}, "target_country"),
        ({"type": "sms"}, "type"),
        ({"description": "d" * 2049}, "description"),
        ({"target_audience": "99"}, "target_audience"),
        ({"use_account_cache": "maybe"}, "use_account_cache"),
    ],
)
def test_bad_upload_fields_are_422(api: Api, stored: tuple, fields: dict, field: str) -> None:
    data = {"name": "n", "type": "email", "target_country": "US", **fields}
    response = api.client.post(
        "/v1/batch", files={"file": ("c.txt", GOOD.encode(), "text/plain")}, data=data
    )
    assert response.status_code == 422, response.text
    assert any(field in error["loc"] for error in response.json()["detail"])


def test_missing_file_and_non_multipart_are_422(api: Api, stored: tuple) -> None:
    no_file = api.client.post(
        "/v1/batch", data={"name": "n", "type": "email", "target_country": "US"}
    )
    assert no_file.status_code == 422
    as_json = api.client.post("/v1/batch", json={"name": "n"})
    assert as_json.status_code == 422
    garbage = api.client.put(
        "/v1/batch/6f1c1c52-0000-4000-8000-000000000000",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert garbage.status_code == 422
    wrong_format = api.client.get(f"/v1/batch/{stored[0]}/export", params={"format": "csv"})
    assert wrong_format.status_code == 422


def test_upload_size_limit(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(APEXVERIFY_MAX_UPLOAD_BYTES="1000")
    api = Api(server.base_url, server.create_account()[0])
    response = api.upload("valid@example.com\n" * 100)
    assert response.status_code == 413
    assert "1000 bytes" in response.json()["message"]
    assert api.upload("valid@example.com\n").status_code == 200
    # Declared far too large: refused from the Content-Length alone, before any spooling.
    huge = api.upload("valid@example.com\n" * 10_000)
    assert huge.status_code == 413
    assert huge.json()["message"]
    assert not list((server.data_dir / "var" / "uploads").glob("*.part"))
    assert 'POST /v1/batch HTTP/1.1" 413' in server.log_tail(5)


def test_formula_payloads_stay_text(api: Api, stored: tuple, tmp_path) -> None:  # type: ignore[no-untyped-def]
    payloads = ["=HYPERLINK(http://evil)", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)"]
    batch_uuid = api.run(
        "\n".join(payloads) + "\nvalid@example.com\n", remove_wrong_email_format="false"
    )
    results = api.export_json(batch_uuid)
    assert all(results[p]["is_syntax_error"] for p in payloads)
    response = api.client.get(f"/v1/batch/{batch_uuid}/export", params={"format": "xlsx"})
    path = tmp_path / "r.xlsx"
    path.write_bytes(response.content)
    sheet = openpyxl.load_workbook(path)["Results"]
    cells = {row[0].value: row[0] for row in sheet.iter_rows(min_row=2)}
    for payload in payloads:
        cell = cells[payload]
        assert cell.data_type == "s"
        assert cell.quotePrefix
    assert not cells["valid@example.com"].quotePrefix


def test_delete_while_parsing_is_refused(api: Api, stored: tuple) -> None:
    batch_uuid = api.new_batch("\n".join(f"u{i}@example.com" for i in range(50_000)))
    response = api.client.delete(f"/v1/batch/{batch_uuid}")
    if response.status_code == 400:
        assert "parsing" in response.json()["message"]
    else:  # parsing already finished on a fast machine
        assert response.status_code == 200


def test_server_still_serving_and_nothing_damaged(
    api: Api, stored: tuple, live_server: LiveServer
) -> None:
    batch_uuid, results, credits = stored
    assert httpx.get(f"{live_server.base_url}/healthz").status_code == 200
    assert api.export_json(batch_uuid) == results
    assert api.client.get("/v1/account/credits").json() == credits
    assert "Traceback" not in live_server.log_tail(2000)
