"""The rows of the JSON export, read a page at a time: ``(value, stored result JSON)`` in file
order, each value once (``exact_repeat``), only the rows in the results (``included``).

On SQLite one statement is stepped through with the DBAPI cursor's ``fetchmany`` and the
result comes back as a BLOB: the UTF-8 bytes the export splices as they are (no decode to
``str`` and encode back, no SQLAlchemy row objects). Profiled on a 200,000-row batch, the
SQLAlchemy ``Result.all`` machinery and the text round trip were two thirds of the export's
time in process. The statement runs in the caller's read transaction, whose snapshot it
shares, so a long download sees one consistent batch and memory stays one page.

On PostgreSQL (psycopg buffers a client-side cursor's whole result) the keyset-paged reader
of ``records.py`` is grouped into pages instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

from sqlalchemy.orm import Session

from . import records

PAGE_ROWS = 4000
# A page: (value, result JSON as stored, UTF-8 bytes on SQLite and str on PostgreSQL; None
# for a row without a result).
ExportPage = list[tuple[str, bytes | str | None]]

_SQLITE_ROWS = (
    "SELECT value, CAST(result AS BLOB) FROM records"
    " WHERE batch_pk = ? AND included AND {unique} ORDER BY seq"
)


def iter_export_pages(
    session: Session, batch_pk: int, unique_values: bool, page_rows: int = PAGE_ROWS
) -> Iterator[ExportPage]:
    """Pages of at most ``page_rows`` export rows, in file order (see the module doc)."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        rows = records.iter_export_json(session, batch_pk, unique_values)
        while page := list(islice(rows, page_rows)):
            yield page  # type: ignore[misc]  # str results: a subtype of the page's union
        return
    driver = connection.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        unique = "exact_repeat = 0" if unique_values else "1"
        cursor.execute(_SQLITE_ROWS.format(unique=unique), (batch_pk,))
        while page := cursor.fetchmany(page_rows):
            yield page
    finally:
        cursor.close()
