"""A corpus of hostile uploads and parameters: documented errors, never a 500, nothing lost."""

from __future__ import annotations

import codecs
import json
from datetime import UTC, datetime

import httpx
import openpyxl
import pytest

from apexverify.web.errors import json_value
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
    # csv is our extension now (docs/export.md); a format nobody serves stays a 422.
    wrong_format = api.client.get(f"/v1/batch/{stored[0]}/export", params={"format": "pdf"})
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


# --- Numbers, dates and the 422 body ----------------------------------------------------------

HOSTILE_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"]
ECHOED = {"NaN": "NaN", "Infinity": "Infinity", "-Infinity": "-Infinity"}
ECHOED |= {"1e400": "Infinity", "-1e400": "-Infinity"}  # Python's JSON reads them as infinities
A_UUID = "6f1c1c52-0000-4000-8000-000000000000"


def _raw_json(api: Api, method: str, path: str, text: str) -> httpx.Response:
    """JSON text as sent, NaN and all (httpx's own encoder refuses to write it)."""
    headers = {"Content-Type": "application/json"}
    return api.client.request(method, path, content=text.encode(), headers=headers)


def _assert_422(response: httpx.Response, *fields: str) -> dict:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["message"].startswith("Invalid request: ")
    for field in fields:
        assert field in body["message"]
        assert any(field in error["loc"] for error in body["detail"])
    return dict(body)


@pytest.mark.parametrize("number", HOSTILE_NUMBERS)
@pytest.mark.parametrize(
    ("method", "path", "template", "field"),
    [
        (
            "POST",
            "/v1/unit",
            '{{"type": "email", "unit": "a@b.co", "target_audience": {n}}}',
            "target_audience",
        ),
        (
            "PUT",
            f"/v1/batch/{A_UUID}",
            '{{"type": "email", "target_country": "US", "max_account_cache_backoff": {n}}}',
            "max_account_cache_backoff",
        ),
        ("POST", "/v1/account/keys", '{{"label": {n}}}', "label"),
    ],
)
def test_non_finite_and_huge_numbers_are_422(
    api: Api, stored: tuple, method: str, path: str, template: str, field: str, number: str
) -> None:
    body = _assert_422(_raw_json(api, method, path, template.format(n=number)), field)
    (error,) = [e for e in body["detail"] if field in e["loc"]]
    assert error["input"] == ECHOED[number]


def test_huge_integers_are_422_and_echoed_exactly(api: Api, stored: tuple) -> None:
    huge = "9" * 40
    text = f'{{"type": "email", "unit": "a@b.co", "target_objective": {huge}}}'
    body = _assert_422(_raw_json(api, "POST", "/v1/unit", text), "target_objective")
    assert body["detail"][0]["input"] == huge  # beyond 64 bits: its digits, as a string


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"offset": str(2**63)}, "offset"),
        ({"offset": "1" + "0" * 30}, "offset"),
        ({"offset": "-1"}, "offset"),
        ({"limit": "201"}, "limit"),
        ({"created_before": "0.5"}, "created_before"),
        ({"created_before": "1712400000"}, "created_before"),
        ({"created_after": "2026-04-06T10:00:00"}, "created_after"),  # no offset
        ({"created_after": "2026-04-06"}, "created_after"),
        ({"created_after": "2026-02-30T10:00:00Z"}, "created_after"),
        ({"created_after": "0001-01-01T00:00:00+01:00"}, "created_after"),  # before year 1 in UTC
    ],
)
def test_list_bounds_are_422(api: Api, stored: tuple, params: dict, field: str) -> None:
    _assert_422(api.client.get("/v1/batch", params=params), field)


def test_list_accepts_the_whole_range(api: Api, stored: tuple) -> None:
    last = api.client.get("/v1/batch", params={"offset": str(2**63 - 1)})
    assert last.status_code == 200, last.text
    assert last.json()["batches"] == []
    # An offset other than Z is read as the instant it names (the stored times are UTC).
    created = api.client.get(f"/v1/batch/{stored[0]}/details").json()["created_at"]
    before = api.client.get("/v1/batch", params={"created_before": "2000-01-01T05:00:00+05:00"})
    after = api.client.get("/v1/batch", params={"created_after": "2000-01-01t00:00:00.123456789z"})
    assert before.json()["batches"] == []
    assert stored[0] in [b["batch_uuid"] for b in after.json()["batches"]]
    assert created.endswith("Z")


def test_422_echoes_json_values_not_python_reprs(api: Api, stored: tuple) -> None:
    body = _assert_422(api.client.put(f"/v1/batch/{A_UUID}", json={}), "type", "target_country")
    assert body["detail"][0]["input"] == {}  # the object itself, not the text "{}"
    nested = {"type": "sms", "target_country": "US", "x": {"deep": [1, {"deeper": [[[[1]]]]}]}}
    body = _assert_422(api.client.put(f"/v1/batch/{A_UUID}", json=nested), "type")
    assert body["detail"][0]["input"] == "sms"
    assert body["message"] == "Invalid request: body.type: Input should be 'email' or 'phone'."
    missing = _assert_422(api.client.put(f"/v1/batch/{A_UUID}", json={"x": list(range(1000))}))
    assert len(missing["detail"][0]["input"]["x"]) == 20  # cut: a 422 stays small


@pytest.mark.parametrize(
    ("field", "value", "accepted"),
    [
        ("use_account_cache", "false", True),
        ("use_account_cache", False, True),
        ("use_account_cache", "yes", False),
        ("use_account_cache", 1, False),
        ("target_audience", "17", True),
        ("target_audience", 17.0, True),
        ("target_audience", "017", False),
        ("target_audience", True, False),
        ("max_global_cache_backoff", "180", True),
        ("max_global_cache_backoff", "181", False),
    ],
)
def test_put_takes_exactly_the_documented_spellings(
    api: Api, stored: tuple, field: str, value: object, accepted: bool
) -> None:
    body = {"type": "email", "target_country": "US", field: value}
    response = api.client.put(f"/v1/batch/{A_UUID}", json=body)
    # Accepted: the body is fine and the batch is looked up (there is none).
    assert response.status_code == (404 if accepted else 422), response.text


def test_405_names_every_method_of_the_path(api: Api, stored: tuple) -> None:
    response = api.client.request("OPTIONS", f"/v1/batch/{A_UUID}")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, PATCH, POST, PUT"
    assert response.json() == {"message": "Method Not Allowed"}


def test_echoed_values_are_always_json() -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    samples = {
        "nan": float("nan"),
        "too long for str()": 10**5000,
        "bytes": b"\xffab",
        "deep": {"a": {"b": {"c": {"d": {"e": 1}}}}},
        "set": {3},
        "when": datetime(2026, 4, 6, tzinfo=UTC),
        "odd": Unprintable(),
    }
    echoed = {name: json_value(value) for name, value in samples.items()}
    json.dumps(echoed, allow_nan=False)  # raises on anything JSON cannot hold
    assert echoed["nan"] == "NaN"
    assert echoed["too long for str()"].startswith("an integer of about 5000 digits")
    assert echoed["bytes"] == "\ufffdab"
    assert echoed["deep"] == {"a": {"b": {"c": {"d": "…"}}}}
    assert echoed["set"] == [3]
    assert echoed["when"] == "2026-04-06T00:00:00+00:00"
    assert echoed["odd"] == "Unprintable"
