"""The XLSX Summary sheet (#16 item 3): human labels, the parameters with their code names,
the costs and the figures of the dashboard's charts; and the dashboard's own filter
(``ResultFilter``) through ``export_response``, the call its download button makes."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import openpyxl
from sqlalchemy import text

from apexverify.batches import exports
from apexverify.export.filters import ResultFilter
from apexverify.web.downloads import export_response
from tests.support.fast import Lab

LINES = [
    "valid+1@example.com",
    "valid+2@gmail.com",
    "role+3@example.com",
    "invalid+4@example.com",
    "unknown+5@example.com",
    "catchall+6@example.com",
    "VALID+1@example.com",  # duplicate
    "broken@",
]


async def _batch(lab: Lab) -> tuple[str, str]:
    _account, key = lab.account(sandbox=True, email=100)
    batch_uuid = await lab.upload(
        key,
        "\n".join(LINES) + "\n",
        name="April list",
        target_audience="17",
        target_market_industry="46",
        target_objective="4",
    )
    assert (await lab.post(key, f"/v1/batch/{batch_uuid}")).json() == {"status": "ok"}
    await lab.queue.run_all()
    return key, batch_uuid


def _summary(body: bytes, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "s.xlsx"
    path.write_bytes(body)
    sheet = openpyxl.load_workbook(path)["Summary"]
    pairs = [(row[0], row[1]) for row in sheet.iter_rows(values_only=True)]
    assert pairs[0] == ("Batch", "April list")  # the first row stays the batch's name
    return {label: value for label, value in pairs if label}


async def test_summary_has_labels_parameters_costs_and_chart_figures(
    lab: Lab, tmp_path: Path
) -> None:
    key, batch_uuid = await _batch(lab)
    response = await lab.get(key, f"/v1/batch/{batch_uuid}/export", format="xlsx")
    summary = _summary(response.content, tmp_path)
    assert not [label for label in summary if "_" in str(label)]  # no raw keys
    assert summary["Batch UUID"] == batch_uuid
    assert summary["Target audience"] == "17 · Marketing & Sales Professionals"
    assert summary["Target industry"] == "46 · Information"
    assert summary["Target objective"].startswith("4 · ")
    assert summary["Remove duplicates"] is True
    assert summary["Accepted emails (valid format)"] == 6
    assert summary["Wrong-format emails"] == 1
    assert summary["Duplicates"] == 1
    for label in ("Total cost", "Net cost (after cache returns)", "Charged", "Refunded"):
        assert isinstance(summary[label], int | float), label
    details = (await lab.get(key, f"/v1/batch/{batch_uuid}")).json()
    assert summary["Total cost"] == details["found_cost"]["total_email_cost"]
    assert summary["Net cost (after cache returns)"] == details["found_cost"]["net_email_cost"]
    assert summary["Charged"] == details["execution_cost"]
    assert summary["Refunded"] == details["refunded_credits"]
    assert summary["Valid"] == 3  # valid, valid, role
    assert summary["Valid (%)"] == 50
    assert summary["Wrong"] == 1
    assert summary["Unknown (%)"] == round(100 * 2 / 6, 2)
    # the charts: decisions and quality, over the six verified first occurrences
    assert summary["Deliverable"] == 2
    assert summary["Risky"] == 2  # role, catch-all
    assert summary["Undeliverable"] == 1
    assert summary["good"] == 2
    assert summary["risky"] == 2
    for section in ("Parameters", "Parsing", "Costs (credits)", "Verification", "By decision"):
        assert section in summary
        assert summary[section] is None


async def test_export_response_takes_the_dashboards_result_filter(lab: Lab) -> None:
    _key, batch_uuid = await _batch(lab)
    with lab.services.store.read() as session:
        account = session.execute(
            text("SELECT account_id FROM batches WHERE uuid = :u"), {"u": batch_uuid}
        ).scalar_one()
        batch = exports.exportable(session, account, batch_uuid)
        session.expunge(batch)
    wanted = ResultFilter(qualities=frozenset({"good"}), search="gmail")
    response = export_response(lab.services, batch, "csv", merge=False, result_filter=wanted)
    body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[misc]
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    assert [row[0] for row in rows[1:]] == ["valid+2@gmail.com"]
    # keep and the table's filter together: both must hold
    response = export_response(
        lab.services, batch, "csv", keep=frozenset({"risky"}), result_filter=wanted
    )
    body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[misc]
    assert body.decode("utf-8-sig").count("\r\n") == 1  # the header only
    assert "April list-risky.csv" in response.headers["content-disposition"]
