"""Table input (#16): a HubSpot-style CSV, XLSX and ODS of ``--rows`` contacts, each uploaded
with the ``column`` extension through a live embedded server, and the same addresses as a
plain one-per-line file for comparison.

    .venv/bin/python bench/table_input.py --rows 1000000
    .venv/bin/python bench/table_input.py --rows 1000000 --formats xlsx,ods

For each: the upload's seconds (receiving the file and, for a table, converting it to the
one-value-per-line file, in the request), the parse's (to ``ready_for_verification``), the
total, rows/s over the total and the peak RSS of the server and its parse workers (sampled
every 50 ms) over the whole. Building the files is not measured.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "src")]

from tests.support.server import LiveServer, start_server  # noqa: E402

from _common import PeakRss, machine  # noqa: E402

HEADER = ["First Name", "Last Name", "Email", "Company", "Phone"]


def contacts(rows: int) -> Iterator[list[Any]]:
    """HubSpot-like rows: 1,000 domains, every 100th email a repeat, every 50th malformed,
    every 7th company quoted (a comma), phones as numbers (for the XLSX)."""
    for i in range(rows):
        if i % 100 == 99:
            email = f"user{i - 50}@example{(i - 50) % 1000}.com"
        elif i % 50 == 25:
            email = f"broken-{i}@"
        else:
            email = f"user{i}@example{i % 1000}.com"
        company = "Acme, Inc." if i % 7 == 0 else "Globex"
        yield [f"Jane{i}", "Doe", email, company, 15550100000 + i]


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(HEADER)
        writer.writerows(contacts(rows))


def write_plain(path: Path, rows: int) -> None:
    with path.open("w") as out:
        out.writelines(f"{row[2]}\n" for row in contacts(rows))


def write_xlsx(path: Path, rows: int) -> None:
    import rustpy_xlsxwriter

    records = (dict(zip(HEADER, row, strict=True)) for row in contacts(rows))
    rustpy_xlsxwriter.write_worksheet(records, str(path), sheet_name="Contacts")


def write_ods(path: Path, rows: int) -> None:
    """An ODS as LibreOffice writes one (strings in ``text:p``, the phone a float, the
    unused area as repeated empty cells and rows), its content.xml streamed into the zip."""
    from xml.sax.saxutils import escape

    ns = (
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"'
    )
    mimetype = "application/vnd.oasis.opendocument.spreadsheet"

    def text(value: str) -> str:
        cell = '<table:table-cell office:value-type="string">'
        return f"{cell}<text:p>{escape(value)}</text:p></table:table-cell>"

    def number(value: int) -> str:
        cell = f'<table:table-cell office:value-type="float" office:value="{value}">'
        return f"{cell}<text:p>{value}</text:p></table:table-cell>"

    def row(cells: list[Any]) -> str:
        body = "".join(text(c) if isinstance(c, str) else number(c) for c in cells)
        tail = '<table:table-cell table:number-columns-repeated="16379"/>'
        return f"<table:table-row>{body}{tail}</table:table-row>"

    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest='
        '"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
        f'<manifest:file-entry manifest:full-path="/" manifest:media-type="{mimetype}"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), mimetype, zipfile.ZIP_STORED)
        archive.writestr("META-INF/manifest.xml", manifest)
        with archive.open("content.xml", "w", force_zip64=True) as entry:
            out = io.TextIOWrapper(entry, encoding="utf-8")
            out.write(
                f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ns} '
                'office:version="1.2"><office:body><office:spreadsheet>'
                '<table:table table:name="Contacts">'
            )
            out.write(row(HEADER))
            for cells in contacts(rows):
                out.write(row(cells))
            out.write(
                '<table:table-row table:number-rows-repeated="1047575">'
                '<table:table-cell table:number-columns-repeated="16384"/></table:table-row>'
                "</table:table></office:spreadsheet></office:body></office:document-content>"
            )
            out.flush()
            out.detach()


def wait_ready(client: httpx.Client, batch_uuid: str, timeout: float = 3600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/v1/batch/{batch_uuid}").json()
        if body["status"] == "ready_for_verification":
            return client.get(f"/v1/batch/{batch_uuid}/details").json()  # type: ignore[no-any-return]
        if body["status"] == "internal_error":
            raise RuntimeError(body)
        time.sleep(0.05)
    raise TimeoutError(batch_uuid)


def run(server: LiveServer, key: str, path: Path, rows: int, table: bool) -> dict[str, Any]:
    client = httpx.Client(base_url=server.base_url, headers={"X-API-Key": key}, timeout=3600)
    assert server.process is not None
    data = {"name": path.name, "type": "email", "target_country": "US"}
    if table:
        data["column"] = "auto"
    with PeakRss(server.process.pid) as rss:
        start = time.perf_counter()
        with path.open("rb") as handle:
            response = client.post("/v1/batch", files={"file": (path.name, handle)}, data=data)
        response.raise_for_status()
        uploaded = time.perf_counter()
        details = wait_ready(client, response.json()["batch_uuid"])
        done = time.perf_counter()
    total = done - start
    result = {
        "file": path.name,
        "bytes": path.stat().st_size,
        "rows": rows,
        "upload_s": round(uploaded - start, 2),
        "parse_s": round(done - uploaded, 2),
        "total_s": round(total, 2),
        "rows_per_s": round(rows / total),
        "peak_rss_mb": round(rss.peak_mb),
        "found_content": details["found_content"],
    }
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--formats", default="plain,csv,xlsx")
    args = parser.parse_args()
    formats = args.formats.split(",")
    report: dict[str, Any] = {"machine": machine(), "runs": []}
    writers = {"plain": ("list.txt", write_plain), "csv": ("contacts.csv", write_csv)}
    writers["xlsx"] = ("contacts.xlsx", write_xlsx)
    writers["ods"] = ("contacts.ods", write_ods)
    with tempfile.TemporaryDirectory(prefix="apexverify-table-") as tmp:
        work = Path(tmp)
        files = {}
        for fmt in formats:
            name, write = writers[fmt]
            started = time.perf_counter()
            write(work / name, args.rows)
            files[fmt] = work / name
            print(f"built {name} in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        server = start_server(work / "server", APEXVERIFY_RATE_LIMIT_PER_MINUTE="1000000")
        try:
            key, _ = server.create_account(sandbox=True, email_credits=args.rows * 4)
            for fmt in formats:
                report["runs"].append(run(server, key, files[fmt], args.rows, fmt != "plain"))
        finally:
            server.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
