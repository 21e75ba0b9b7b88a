"""Table input through the real server (#16): the ``column`` / ``header`` extension fields of
``POST /v1/batch``. Real files (HubSpot, Mailchimp, semicolon, TSV, one column with a header,
XLSX, ODS) become batches with the right counts, their original rows come back in order
(``iter_source_rows``), and bad tables are a 400 ``parse_error`` that stores nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from apexverify.batches.sources import iter_source_rows, source_header
from apexverify.storage import LocalStorage
from apexverify.store.db import Store
from apexverify.store.models import Batch
from tests.api.helpers import Api
from tests.support import table_files
from tests.support.server import LiveServer
from tests.support.table_files import TableFile


@pytest.fixture(scope="module")
def api(live_server: LiveServer, api_key: str) -> Iterator[Api]:
    client = Api(live_server.base_url, api_key)
    yield client
    client.client.close()


def _upload(
    api: Api, table: TableFile | None, content: bytes = b"", **fields: str
) -> httpx.Response:
    name = table.name if table else fields.pop("filename", "contacts.csv")
    body = table.content if table else content
    data = {
        "name": "table",
        "type": table.record_type if table else fields.pop("type", "email"),
        "target_country": "US",
        **fields,
    }
    return api.client.post("/v1/batch", files={"file": (name, body, "text/csv")}, data=data)


def _stored(server: LiveServer, batch_uuid: str) -> Batch:
    store = Store(server.env["APEXVERIFY_DATABASE_URL"])
    try:
        with store.read() as session:
            batch = session.query(Batch).filter_by(uuid=batch_uuid).one()
            session.expunge(batch)
            return batch
    finally:
        store.dispose()


def _uploads(server: LiveServer) -> set[str]:
    folder = server.data_dir / "var" / "uploads"
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def _files(tmp: Path) -> list[TableFile]:
    return [
        table_files.hubspot_csv(),
        table_files.mailchimp_csv(),
        table_files.semicolon_csv(),
        table_files.tsv(),
        table_files.one_column(),
        table_files.xlsx(tmp),
        table_files.xlsx_phones(tmp),
        table_files.ods(),
    ]


@pytest.mark.parametrize(
    "index",
    range(8),
    ids=lambda i: [
        "hubspot",
        "mailchimp",
        "semicolon",
        "tsv",
        "one-column",
        "xlsx",
        "xlsx-phone",
        "ods",
    ][i],
)
def test_a_table_becomes_a_batch_with_its_rows_kept(
    api: Api, live_server: LiveServer, tmp_path: Path, index: int
) -> None:
    table = _files(tmp_path)[index]
    response = _upload(api, table, column="auto")
    assert response.status_code == 200, response.text
    batch_uuid = response.json()["batch_uuid"]
    api.wait_for(batch_uuid, "ready_for_verification")
    details = api.client.get(f"/v1/batch/{batch_uuid}/details").json()
    t = table.record_type
    assert details["found_content"] == {
        f"valid_{t}": table.valid,
        f"wrong_{t}": table.wrong,
        f"duplicate_{t}": table.duplicate,
    }
    batch = _stored(live_server, batch_uuid)
    extension = table.name.rsplit(".", 1)[1]
    assert batch.source_format == ("csv" if extension == "tsv" else extension)
    assert source_header(batch) == table.header
    assert list(iter_source_rows(LocalStorage(), batch)) == table.rows


def test_the_column_by_name_number_and_header_false(api: Api, live_server: LiveServer) -> None:
    hubspot = table_files.hubspot_csv()
    by_name = _upload(api, hubspot, column="  email ")
    by_number = _upload(api, hubspot, column="3")
    assert by_name.status_code == by_number.status_code == 200, (by_name.text, by_number.text)
    for response in (by_name, by_number):
        api.wait_for(response.json()["batch_uuid"], "ready_for_verification")
        assert _stored(live_server, response.json()["batch_uuid"]).source_options["column"] == 2
    # header=false: the first row is data (here a wrong value), and the header is Column N.
    rows = b"a@example.com,x\nb@example.com,y\n"
    response = _upload(api, None, rows, column="1", header="false")
    assert response.status_code == 200, response.text
    batch_uuid = response.json()["batch_uuid"]
    api.wait_for(batch_uuid, "ready_for_verification")
    batch = _stored(live_server, batch_uuid)
    assert source_header(batch) == ["Column 1", "Column 2"]
    assert list(iter_source_rows(LocalStorage(), batch)) == [
        ["a@example.com", "x"],
        ["b@example.com", "y"],
    ]


def test_a_file_without_a_header_row_is_detected(api: Api, live_server: LiveServer) -> None:
    response = _upload(api, None, b"Jane;jane@example.com\nJim;jim@example.com\n", column="auto")
    assert response.status_code == 200, response.text
    batch_uuid = response.json()["batch_uuid"]
    api.wait_for(batch_uuid, "ready_for_verification")
    batch = _stored(live_server, batch_uuid)
    assert batch.source_options["has_header"] is False
    assert len(list(iter_source_rows(LocalStorage(), batch))) == 2


def test_without_the_extension_a_csv_is_still_a_parse_error(api: Api) -> None:
    for table in (table_files.hubspot_csv(), table_files.mailchimp_csv()):
        for fields in ({}, {"column": ""}, {"column": "  "}):
            response = _upload(api, table, **fields)
            assert response.status_code == 400, response.text
            assert response.json()["status"] == "parse_error"
    bom = _upload(api, table_files.hubspot_csv()).json()["message"]
    assert "byte order mark" in bom


def _refused(api: Api, live_server: LiveServer, content: bytes, **fields: str) -> str:
    before = _uploads(live_server)
    response = _upload(api, None, content, **fields)
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "parse_error"
    assert _uploads(live_server) == before  # nothing half-stored
    return str(body["message"])


def test_a_column_that_cannot_be_found_names_the_columns(api: Api, live_server: LiveServer) -> None:
    content = table_files.hubspot_csv().content
    message = _refused(api, live_server, content, column="Mail Address")
    assert "No column named 'Mail Address'" in message
    assert "'First Name', 'Last Name', 'Email', 'Company'" in message
    assert "out of range" in _refused(api, live_server, content, column="9")
    assert "out of range" in _refused(api, live_server, content, column="0")
    no_match = _refused(api, live_server, b"Name,City\nAnn,Rome\nBen,Oslo\n", column="auto")
    assert "No column looks like email addresses" in no_match
    assert "'City'" in no_match
    phones = _refused(api, live_server, content, column="auto", type="phone")
    assert "phone numbers" in phones
    assert "header=false" in _refused(api, live_server, content, column="Email", header="false")
    assert "no values" in _refused(api, live_server, b"Email,Name\n,Ann\n,Ben\n", column="auto")
    assert "no data rows" in _refused(api, live_server, b"Email,Name\n", column="auto")


def test_hostile_tables_are_refused_cleanly(api: Api, live_server: LiveServer) -> None:
    bomb = _refused(api, live_server, table_files.zip_bomb(), column="auto", filename="a.xlsx")
    assert "zip bomb" in bomb
    garbage = b"PK\x03\x04" + bytes(range(256)) * 64
    assert "zip" in _refused(api, live_server, garbage, column="auto", filename="a.xlsx")
    assert "NUL" in _refused(api, live_server, b"Email\na@example.com\x00\n", column="auto")
    assert "UTF-8" in _refused(api, live_server, b"Email\n\xff\xfeb@x.com\n", column="auto")
    assert "UTF-16" in _refused(api, live_server, "Email\n".encode("utf-16"), column="auto")
    assert "legacy" in _refused(api, live_server, b"\xd0\xcf\x11\xe0" + b"\0" * 600, column="auto")
    huge = b'Email,Note\na@example.com,"' + b"x" * (10 * 1024 * 1024) + b'"\n'
    assert "cannot be read as CSV" in _refused(api, live_server, huge, column="auto")
    long_value = b"Email\n" + b"a" * 5000 + b"@example.com\n"
    assert "longer than 4096" in _refused(api, live_server, long_value, column="auto")
    assert "empty" in _refused(api, live_server, b"", column="auto")
    assert "empty" in _refused(api, live_server, b"", column="auto", filename="a.xlsx")


def test_a_workbook_too_wide_to_read_is_refused_and_the_server_lives(
    api: Api, live_server: LiveServer, tmp_path: Path
) -> None:
    far = table_files.far_cells_xlsx(tmp_path)
    message = _refused(api, live_server, far, column="auto", filename="far.xlsx")
    # The streaming reader reads it (a million empty rows, one at a time); its last row is
    # wider than a table upload may be. (python-calamine aborted on its 512 GB grid.)
    assert "Data row 1048575 has more than 1000 columns" in message
    assert live_server.process is not None
    assert live_server.process.poll() is None
    table = table_files.xlsx(tmp_path)
    assert _upload(api, table, column="auto").status_code == 200


def test_a_bad_header_value_is_a_422(api: Api) -> None:
    response = _upload(api, table_files.hubspot_csv(), column="auto", header="maybe")
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "header"]
    response = _upload(api, table_files.hubspot_csv(), column="x" * 300)
    assert response.status_code == 422, response.text


def test_deleting_a_table_batch_deletes_the_original(api: Api, live_server: LiveServer) -> None:
    response = _upload(api, table_files.semicolon_csv(), column="auto")
    batch_uuid = response.json()["batch_uuid"]
    api.wait_for(batch_uuid, "ready_for_verification")
    assert {f"{batch_uuid}.txt", f"{batch_uuid}.source.csv"} <= _uploads(live_server)
    assert api.client.delete(f"/v1/batch/{batch_uuid}").status_code == 200
    assert not {n for n in _uploads(live_server) if n.startswith(batch_uuid)}


def test_the_extension_is_documented_in_the_upload_form(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    form = document["components"]["schemas"]["UploadForm"]["properties"]
    assert "ApexVerify extension" in form["column"]["description"]
    assert form["header"]["enum"] == ["", "auto", "true", "false"]
    assert "ApexVerify extension" in document["paths"]["/v1/batch"]["post"]["description"]
