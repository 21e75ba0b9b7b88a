"""The output side of #16 through the in-process app on SQLite: merged-back CSV and XLSX
(every original column and row, in order, then the result columns) and the ``keep`` filters
(each download holds exactly the matching rows) in JSON, XLSX and CSV, merged or not, for
emails and phones. What each row must say is computed here from the sandbox's magic values
(``docs/sandbox.md``), not read back from the server."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from itertools import combinations
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import xlsxwriter

from apexverify.export.merged import result_keys
from apexverify.store.models import Batch
from tests.support.fakes import FakeEngines, ScriptedVerifier
from tests.support.fast import Lab, open_lab

HEADER = ["First Name", "Last Name", "Email", "Company", "Decision"]
# (first, last, email, company, decision: a column of the customer's named like ours)
ROWS = [
    ["Ann", "Avery", "valid+1@example.com", "Acme", "x"],
    ["Bob", "Baker", "role+2@example.com", "Acme", ""],
    ["Cid", "Cole", "invalid+3@example.com", "=HYPERLINK(1)", ""],
    ["Dee", "Dunn", "unknown+4@example.com", "Dunn & Co", ""],
    ["Eve", "Ezra", "catchall+5@example.com", "", ""],
    ["Fay", "Ford", "", "no address", ""],
    ["Gus", "Gray", "broken@", "Gray Ltd", ""],
    ["Hal", "Hart", "VALID+1@example.com", "Acme", ""],  # a duplicate of row 0
    ["Ian", "Ives, Jr.", "disposable+9@example.com", 'say "hi"', ""],
    ["Jo", "Jones", "error+10@example.com", "Jones\nNewline", ""],
]
MAGIC = {
    "valid": "deliverable",
    "role": "risky",
    "invalid": "undeliverable",
    "unknown": "unknown",
    "catchall": "risky",
    "disposable": "risky",
    "error": "unknown",
}
ALL = ("deliverable", "risky", "undeliverable", "unknown")
KEEPS = [frozenset(c) for n in (1, 2, 4) for c in combinations(ALL, n) if n != 2 or "risky" in c]


def _decision(email: str) -> str | None:
    if not email:
        return None
    if email.endswith("@"):
        return "undeliverable"  # a stored syntax-error result
    return MAGIC[email.split("+", 1)[0].lower()]


def _csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\r\n").writerows([header, *rows])
    return b"\xef\xbb\xbf" + out.getvalue().encode()


async def _finished(lab: Lab, name: str, content: bytes, **fields: str) -> tuple[str, str]:
    _account, key = lab.account(sandbox=True, email=100, phone=100)
    data = {"name": "growth list", "type": "email", "target_country": "US", **fields}
    response = await lab.client.post(
        "/v1/batch",
        headers={"X-Api-Key": key},
        data=data,
        files={"file": (name, content, "text/csv")},
    )
    assert response.status_code == 200, response.text
    await lab.queue.run_all()
    batch_uuid = str(response.json()["batch_uuid"])
    assert (await lab.post(key, f"/v1/batch/{batch_uuid}")).json() == {"status": "ok"}
    await lab.queue.run_all()
    return key, batch_uuid


def _read_csv(body: bytes) -> list[list[str]]:
    assert body.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def _read_xlsx(body: bytes, tmp_path: Path, sheet: str = "Results") -> list[list[Any]]:
    path = tmp_path / "download.xlsx"
    path.write_bytes(body)
    book = openpyxl.load_workbook(path)
    return [list(row) for row in book[sheet].iter_rows(values_only=True)]


def _text(cell: Any) -> str:
    return "" if cell is None else str(cell)


EMAIL_RESULT_HEADER = [
    "decision_apexverify" if key == "decision" else key for key in result_keys("email")
]


@pytest.fixture
async def hubspot(lab: Lab) -> tuple[Lab, str, str]:
    key, batch_uuid = await _finished(lab, "contacts.csv", _csv_bytes(HEADER, ROWS), column="Email")
    return lab, key, batch_uuid


async def test_merged_csv_is_the_original_file_with_result_columns(
    hubspot: tuple[Lab, str, str],
) -> None:
    lab, key, batch_uuid = hubspot
    response = await lab.get(key, f"/v1/batch/{batch_uuid}/export", format="csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="growth list.csv"' in response.headers["content-disposition"]
    table = _read_csv(response.content)
    assert table[0] == HEADER + EMAIL_RESULT_HEADER  # ours renamed, the customer's kept
    assert len(table) == 1 + len(ROWS)
    width = len(HEADER)
    decision_col = width
    for original, row in zip(ROWS, table[1:], strict=True):
        assert row[:width] == original  # every cell as uploaded, in order (=, quotes, \n)
        expected = _decision(original[2])
        if expected is None:
            assert row[width:] == [""] * len(EMAIL_RESULT_HEADER)
        else:
            assert row[decision_col] == expected
            result = dict(zip(EMAIL_RESULT_HEADER, row[width:], strict=True))
            valid = original[2].split("+")[0].lower() in ("valid", "role")
            assert result["valid"] == ("true" if valid else "false")
    # the duplicate row carries its first occurrence's result, the malformed one its own
    assert table[8][width:] == table[1][width:]
    by_name = dict(zip(EMAIL_RESULT_HEADER, table[7][width:], strict=True))
    assert by_name["is_syntax_error"] == "true"
    assert by_name["wrong"] == "true"


async def test_merged_xlsx_holds_every_original_column_and_row(
    hubspot: tuple[Lab, str, str], tmp_path: Path
) -> None:
    lab, key, batch_uuid = hubspot
    response = await lab.get(key, f"/v1/batch/{batch_uuid}/export", format="xlsx", merge="true")
    assert response.status_code == 200, response.text
    rows = _read_xlsx(response.content, tmp_path)
    assert rows[0] == HEADER + EMAIL_RESULT_HEADER
    assert len(rows) == 1 + len(ROWS)
    width = len(HEADER)
    for original, row in zip(ROWS, rows[1:], strict=True):
        assert [_text(cell) for cell in row[:width]] == original
        expected = _decision(original[2])
        assert row[width] == expected
        if expected is not None:
            result = dict(zip(EMAIL_RESULT_HEADER, row[width:], strict=True))
            assert result["valid"] is (original[2].split("+")[0].lower() in ("valid", "role"))
            assert isinstance(result["is_free"], bool)
        else:
            assert row[width:] == [None] * len(EMAIL_RESULT_HEADER)


async def test_merged_xlsx_input_comes_back_as_xlsx(lab: Lab, tmp_path: Path) -> None:
    source = tmp_path / "contacts.xlsx"
    book = xlsxwriter.Workbook(str(source))
    sheet = book.add_worksheet("Contacts")
    for r, row in enumerate([HEADER, *ROWS]):
        for c, value in enumerate(row):
            sheet.write_string(r, c, value)
    book.close()
    key, batch_uuid = await _finished(lab, "contacts.xlsx", source.read_bytes(), column="Email")
    response = await lab.get(key, f"/v1/batch/{batch_uuid}/export", format="xlsx", merge="true")
    rows = _read_xlsx(response.content, tmp_path)
    assert rows[0] == HEADER + EMAIL_RESULT_HEADER
    assert [[_text(c) for c in row[: len(HEADER)]] for row in rows[1:]] == ROWS
    assert [row[len(HEADER)] for row in rows[1:]] == [_decision(row[2]) for row in ROWS]


def _json_expected(keep: frozenset[str]) -> list[str]:
    """Default rules: malformed and duplicate rows are not in the JSON; blank cells neither."""
    seen: set[str] = set()
    out = []
    for row in ROWS:
        email = row[2]
        if not email or email.endswith("@") or email.lower() in seen:
            continue
        seen.add(email.lower())
        if _decision(email) in keep:
            out.append(email)
    return out


@pytest.mark.parametrize("keep", KEEPS, ids=lambda k: ",".join(sorted(k)))
async def test_each_keep_filter_holds_exactly_the_matching_rows(
    hubspot: tuple[Lab, str, str], tmp_path: Path, keep: frozenset[str]
) -> None:
    lab, key, batch_uuid = hubspot
    path = f"/v1/batch/{batch_uuid}/export"
    text = ",".join(sorted(keep))
    merged_expected = [row for row in ROWS if _decision(row[2]) in keep]

    merged_csv = _read_csv((await lab.get(key, path, format="csv", keep=text)).content)
    assert merged_csv[1:] == [
        row for row in merged_csv[1:] if row[len(HEADER)] in keep
    ]  # only matching decisions
    assert [row[: len(HEADER)] for row in merged_csv[1:]] == merged_expected

    merged_xlsx = _read_xlsx(
        (await lab.get(key, path, format="xlsx", merge="true", keep=text)).content, tmp_path
    )
    assert [[_text(c) for c in row[: len(HEADER)]] for row in merged_xlsx[1:]] == merged_expected

    data = json.loads((await lab.get(key, path, format="json", keep=text)).content)
    statistics = data.pop("_statistics")
    assert statistics["batch_uuid"] == batch_uuid
    assert list(data) == _json_expected(keep)

    plain_xlsx = _read_xlsx((await lab.get(key, path, format="xlsx", keep=text)).content, tmp_path)
    assert plain_xlsx[0][0] == "email"
    assert [row[0] for row in plain_xlsx[1:]] == _json_expected(keep)

    plain_csv = _read_csv(
        (await lab.get(key, path, format="csv", merge="false", keep=text)).content
    )
    assert plain_csv[0][:2] == ["email", "decision"]
    assert [row[0] for row in plain_csv[1:]] == _json_expected(keep)
    assert {row[1] for row in plain_csv[1:]} <= keep


async def test_filtered_download_names_the_batch_and_the_filter(
    hubspot: tuple[Lab, str, str],
) -> None:
    lab, key, batch_uuid = hubspot
    response = await lab.get(
        key, f"/v1/batch/{batch_uuid}/export", format="xlsx", keep="risky,deliverable"
    )
    assert (
        'filename="growth list-deliverable-risky.xlsx"' in response.headers["content-disposition"]
    )


@pytest.mark.parametrize("keep", ["good", "deliverable,nope", "DELIVERABLE;risky"])
async def test_a_bad_keep_is_a_422_with_a_message(hubspot: tuple[Lab, str, str], keep: str) -> None:
    lab, key, batch_uuid = hubspot
    response = await lab.get(key, f"/v1/batch/{batch_uuid}/export", format="csv", keep=keep)
    assert response.status_code == 422
    body = response.json()
    assert "unknown decision" in body["message"]
    assert "deliverable, risky, undeliverable, unknown" in body["message"]


async def test_keep_is_strict_lower_case_without_spaces(hubspot: tuple[Lab, str, str]) -> None:
    lab, key, batch_uuid = hubspot
    response = await lab.get(
        key, f"/v1/batch/{batch_uuid}/export", format="csv", keep="deliverable, risky"
    )
    assert response.status_code == 422
    assert "lower case, no spaces" in response.json()["message"]


async def test_a_bad_format_is_still_a_422(hubspot: tuple[Lab, str, str]) -> None:
    lab, key, batch_uuid = hubspot
    response = await lab.get(key, f"/v1/batch/{batch_uuid}/export", format="tsv")
    assert response.status_code == 422


async def test_without_the_new_parameters_the_layouts_are_unchanged(
    hubspot: tuple[Lab, str, str], tmp_path: Path
) -> None:
    lab, key, batch_uuid = hubspot
    path = f"/v1/batch/{batch_uuid}/export"
    response = await lab.get(key, path, format="json")
    assert response.headers["content-disposition"] == (
        f'attachment; filename="apexverify-{batch_uuid}.json"'
    )
    data = json.loads(response.content)
    assert list(data) == [*_json_expected(frozenset(ALL)), "_statistics"]
    first = data["valid+1@example.com"]
    assert list(first)[:11] == ["email", *result_keys("email")[1:11]]
    assert "decision" not in first

    response = await lab.get(key, path, format="xlsx")
    assert response.headers["content-disposition"] == (
        f'attachment; filename="apexverify-{batch_uuid}.xlsx"'
    )
    rows = _read_xlsx(response.content, tmp_path)
    assert rows[0][:11] == ["email", *result_keys("email")[1:11]]
    assert "decision" not in rows[0]
    assert [row[0] for row in rows[1:]] == _json_expected(frozenset(ALL))


PHONES = [f"+659123456{d}" for d in range(10)]
PHONE_DECISION = {
    "0": "deliverable",
    "1": "deliverable",
    "2": "undeliverable",
    "3": "unknown",
    "4": "deliverable",
    "5": "unknown",
    "6": "deliverable",
    "7": "undeliverable",
    "8": "unknown",
    "9": "deliverable",
}


@pytest.fixture
async def phone_lab(tmp_path: Path) -> AsyncIterator[Lab]:
    """A lab whose engine gives the phone sandbox's verdicts."""
    engines = FakeEngines(ScriptedVerifier("phone"))
    async with open_lab(tmp_path / "phone", engines=engines) as opened:
        yield opened


async def test_phone_plain_list_merged(phone_lab: Lab, tmp_path: Path) -> None:
    lab = phone_lab
    content = ("\n".join([PHONES[0], "", *PHONES[1:]]) + "\n").encode()
    key, batch_uuid = await _finished(lab, "phones.txt", content, type="phone", target_country="SG")
    path = f"/v1/batch/{batch_uuid}/export"
    table = _read_csv((await lab.get(key, path, format="csv")).content)
    assert table[0] == ["phone", *result_keys("phone")]
    assert [row[0] for row in table[1:]] == [PHONES[0], "", *PHONES[1:]]
    assert [row[1] for row in table[1:]] == [
        PHONE_DECISION["0"],
        "",
        *(PHONE_DECISION[p[-1]] for p in PHONES[1:]),
    ]
    for keep in ("deliverable", "undeliverable", "unknown", "deliverable,unknown"):
        wanted = set(keep.split(","))
        expected = [p for p in PHONES if PHONE_DECISION[p[-1]] in wanted]
        rows = _read_xlsx(
            (await lab.get(key, path, format="xlsx", merge="true", keep=keep)).content, tmp_path
        )
        assert [row[0] for row in rows[1:]] == expected
        data = json.loads((await lab.get(key, path, format="json", keep=keep)).content)
        data.pop("_statistics")
        assert list(data) == expected
        plain = _read_csv(
            (await lab.get(key, path, format="csv", merge="false", keep=keep)).content
        )
        assert [row[0] for row in plain[1:]] == expected  # "+65..." kept as it is
    # risky is never a phone's decision: the file holds the header only
    rows = _read_csv((await lab.get(key, path, format="csv", keep="risky")).content)
    assert rows == [["phone", *result_keys("phone")]]


@pytest.mark.parametrize("record_type", ["email", "phone"])
async def test_xlsx_holds_every_json_field_extras_included(
    lab: Lab, phone_lab: Lab, tmp_path: Path, record_type: str
) -> None:
    if record_type == "phone":
        lab = phone_lab
    if record_type == "email":
        values, fields = [row[2] for row in ROWS if row[2]], {}
    else:
        values, fields = PHONES, {"type": "phone", "target_country": "SG"}
    content = ("\n".join(values) + "\n").encode()
    key, batch_uuid = await _finished(lab, "list.txt", content, **fields)
    path = f"/v1/batch/{batch_uuid}/export"
    data = json.loads((await lab.get(key, path, format="json", include_statistics="false")).content)
    rows = _read_xlsx((await lab.get(key, path, format="xlsx")).content, tmp_path)
    header = rows[0]
    by_value = {row[0]: dict(zip(header, row, strict=True)) for row in rows[1:]}
    assert set(by_value) == set(data)
    for value, obj in data.items():
        for field, expected in obj.items():
            cell = by_value[value].get(field, "missing")
            if expected is None or expected == "":
                assert cell is None, (value, field)
            else:
                assert cell == expected, (value, field)
    if record_type == "phone":
        assert "sandbox" in header  # an engine's extra has its own column


async def test_a_headerless_semicolon_file_merges_under_column_names(
    lab: Lab, tmp_path: Path
) -> None:
    rows = [["Zoë", "valid+1@example.com", "1"], ["", "", ""], ["Al", "invalid+2@example.com", "2"]]
    content = "\r\n".join(";".join(row) for row in rows).encode() + b"\r\n"
    key, batch_uuid = await _finished(lab, "list.csv", content, column="2", header="false")
    path = f"/v1/batch/{batch_uuid}/export"
    table = _read_csv((await lab.get(key, path, format="csv")).content)
    assert table[0] == ["Column 1", "Column 2", "Column 3", *result_keys("email")]
    assert [row[:3] for row in table[1:]] == rows
    assert [row[3] for row in table[1:]] == ["deliverable", "", "undeliverable"]
    sheet = _read_xlsx((await lab.get(key, path, format="xlsx", merge="true")).content, tmp_path)
    assert [[_text(c) for c in row[:3]] for row in sheet[1:]] == rows


async def test_a_merge_without_its_original_file_is_a_400(
    hubspot: tuple[Lab, str, str],
) -> None:
    lab, key, batch_uuid = hubspot
    with lab.services.store.read() as session:
        batch = session.query(Batch).filter_by(uuid=batch_uuid).one()
        lab.services.storage.delete(batch.source_path or "")
    path = f"/v1/batch/{batch_uuid}/export"
    response = await lab.get(key, path, format="csv")
    assert response.status_code == 400
    assert "merge=false" in response.json()["message"]
    assert (await lab.get(key, path, format="csv", merge="false")).status_code == 200
