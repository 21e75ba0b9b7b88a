"""CSV export, streamed in pieces: written by the ``csv`` module, RFC 4180 (comma, ``"``
quoting only where needed, CRLF line ends), UTF-8 with a byte order mark so Excel opens
accented names and non-Latin scripts correctly (HubSpot, Mailchimp and Google Sheets ignore
the BOM on import).

Cells: ``None`` is empty, booleans ``true``/``false`` (as in the JSON), numbers as Python
writes them, dicts and lists compact JSON. Text in a *result* column starting with
``= + - @`` gets a leading ``'`` (OWASP's CSV-injection advice: a spreadsheet would read it as
a formula); the customer's own columns are written back exactly as they were uploaded.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

import orjson

BOM: Final = "\ufeff"
FORMULA_TRIGGERS: Final = ("=", "+", "-", "@")
_TRIGGERS: Final = frozenset(FORMULA_TRIGGERS)
_PIECE_CHARS: Final = 65536


def _cells(values: Sequence[Any]) -> list[Any]:
    """Result cells as CSV text (see the module docstring); one loop, no call per cell
    (this is most of a merged CSV's time)."""
    out: list[Any] = []
    append_to = out.append
    for value in values:
        kind = value.__class__
        if kind is str:
            if value[:1] in _TRIGGERS:
                value = "'" + value
        elif value is None:
            value = ""
        elif kind is bool:
            value = "true" if value else "false"
        elif kind is dict or kind is list:
            value = orjson.dumps(value).decode()
        append_to(value)
    return out


def stream_csv(
    header: Sequence[str], rows: Iterable[Sequence[Any]], *, trusted_columns: int = 0
) -> Iterator[bytes]:
    """Yield the file in ~64 KiB pieces: the header, then the rows. The first
    ``trusted_columns`` cells of each row (the customer's own columns) are written as they
    are; the others are converted and guarded (see the module docstring)."""
    buffer = io.StringIO()
    buffer.write(BOM)
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([*row[:trusted_columns], *_cells(row[trusted_columns:])])
        if buffer.tell() > _PIECE_CHARS:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()
