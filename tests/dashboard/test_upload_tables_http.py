"""The upload form's table fields over plain HTTP (the no-JavaScript path): a table file is
read with column=auto when Column is empty, a wrong column or header is refused with the form
back (every typed field kept, the message at the Column field), and nothing is created."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support import table_files
from tests.support.dashboard import csrf, signed_in
from tests.support.server import LiveServer


@pytest.fixture
def client(dash_server: LiveServer) -> Iterator[httpx.Client]:
    key, _ = dash_server.create_account(sandbox=True)
    signed = signed_in(dash_server, key)
    yield signed
    signed.close()


def _post(client: httpx.Client, name: str, content: bytes, **fields: str) -> httpx.Response:
    data = {
        "csrf_token": csrf(client, "/batches/new"),
        "name": "contacts",
        "type": "email",
        "target_country": "DE",
        **fields,
    }
    return client.post("/batches/new", data=data, files={"file": (name, content, "text/csv")})


def _batches(client: httpx.Client) -> int:
    return client.get("/").text.count('<th scope="row"><a href="/batches/')


def test_the_form_offers_table_files(client: httpx.Client) -> None:
    html = client.get("/batches/new").text
    assert 'accept=".txt,.csv,.tsv,.xlsx,.ods' in html
    assert 'id="column" name="column"' in html
    assert 'id="header" name="header"' in html


def test_a_csv_without_column_is_read_as_a_table(client: httpx.Client) -> None:
    table = table_files.semicolon_csv()
    answer = _post(client, table.name, table.content)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"].startswith("/batches/")


@pytest.mark.parametrize(
    ("fields", "field", "text"),
    [
        ({"column": "Nope"}, "column", "Nope"),
        ({"column": "x" * 300}, "column", "At most 255"),
        ({"header": "maybe"}, "header", "auto, yes or no"),
    ],
)
def test_a_refused_table_keeps_the_fields(
    client: httpx.Client, fields: dict[str, str], field: str, text: str
) -> None:
    table = table_files.hubspot_csv()
    before = _batches(client)
    answer = _post(client, table.name, table.content, description="spring list", **fields)
    assert answer.status_code == 400
    assert f'id="{field}_error"' in answer.text
    assert text in answer.text
    assert 'value="contacts"' in answer.text  # the name
    assert "spring list</textarea>" in answer.text
    assert 'value="DE"' in answer.text
    if field == "column" and len(fields["column"]) < 255:
        assert 'value="Nope"' in answer.text
    assert _batches(client) == before


def test_a_plain_list_is_the_hosted_format_unless_column_is_given(client: httpx.Client) -> None:
    """A .txt file is the hosted API's format (a header line is refused); filling in Column
    reads it as a table."""
    refused = _post(client, "list.txt", b"email\nx@example.com\n")
    assert refused.status_code == 400
    assert "looks like a header" in refused.text
    accepted = _post(client, "list.txt", b"email\nx@example.com\n", column="auto")
    assert accepted.status_code == 303
