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
_PIECE_CHARS: Final = 65536


def _text(value: object) -> object:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


def _guarded(value: object) -> object:
    text = _text(value)
    if isinstance(text, str) and text.startswith(FORMULA_TRIGGERS):
        return "'" + text
    return text


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
        head = row[:trusted_columns]
        writer.writerow([*head, *map(_guarded, row[trusted_columns:])])
        if buffer.tell() > _PIECE_CHARS:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()
