"""JSON export: an object keyed by the original value, streamed piece by piece.

``include_details=false`` maps each value to ``{"<type>": value, "valid", "wrong", "unknown"}``
only; ``include_statistics=true`` adds one key ``"_statistics"`` (no email contains no ``@``
and no phone number starts with ``_``, so it cannot collide with a record) holding the batch
stats. See ``docs/export.md``.

Linear and cheap per row: each result arrives as the JSON text the database stores, and with
details it is spliced after the identity field as it is (no parse, no re-encoding); values and
the summary objects are encoded with orjson.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

import orjson

SUMMARY_FIELDS = ("valid", "wrong", "unknown")
STATISTICS_KEY = "_statistics"
_UNVERIFIED: dict[str, Any] = {"valid": False, "wrong": False, "unknown": True}

# (value, result): the stored JSON text of the result (spliced as it is), or a decoded dict.
StoredResult = str | bytes | dict[str, Any] | None
StoredRow = tuple[str, StoredResult]


def record_object(
    record_type: str, value: str, result: dict[str, Any] | None, details: bool
) -> dict[str, Any]:
    """One value's object, from a decoded result (the rule the raw splice below follows)."""
    result = result or _UNVERIFIED
    if not details:
        return {record_type: value, **{k: result.get(k) for k in SUMMARY_FIELDS}}
    return {record_type: value, **result}


def _object_bytes(
    record_type: str, head: bytes, value: str, raw: StoredResult, details: bool
) -> bytes:
    if raw is None or isinstance(raw, dict):
        return orjson.dumps(record_object(record_type, value, raw, details))
    if not details:
        return orjson.dumps(record_object(record_type, value, orjson.loads(raw), False))
    body = raw.encode() if isinstance(raw, str) else raw
    body = body.strip()
    if body == b"{}":
        return head + b"}"
    return head + b"," + body[1:]


def stream_json_pages(
    record_type: str,
    pages: Iterable[Sequence[StoredRow]],
    *,
    details: bool,
    statistics: dict[str, Any] | None,
) -> Iterator[bytes]:
    """Yield the export one piece per page of rows (the last piece closes the object).

    The common row (details, a stored non-empty object: its text starts ``{"``) is one bytes
    concatenation; every other row takes :func:`_object_bytes`. A page is joined once, so the
    response carries a few hundred large pieces rather than one per row."""
    identity = b"{" + orjson.dumps(record_type) + b":"
    dumps = orjson.dumps
    opening = b"{"
    for page in pages:
        parts: list[bytes] = []
        append = parts.append
        for value, raw in page:
            key = dumps(value)
            if details and raw.__class__ is bytes and raw[:2] == b'{"':
                append(key + b":" + identity + key + b"," + raw[1:])
            else:
                append(key + b":" + _object_bytes(record_type, identity + key, value, raw, details))
        if parts:
            parts[0] = opening + parts[0]
            opening = b","
            yield b",".join(parts)
    tail = b""
    if statistics is not None:
        tail = opening + orjson.dumps(STATISTICS_KEY) + b":" + orjson.dumps(statistics)
    elif opening == b"{":
        tail = b"{"
    yield tail + b"}"


def stream_json(
    record_type: str,
    rows: Iterable[StoredRow],
    *,
    details: bool,
    statistics: dict[str, Any] | None,
    page_rows: int = 1000,
) -> Iterator[bytes]:
    """:func:`stream_json_pages` over rows taken ``page_rows`` at a time."""
    it = iter(rows)
    pages = iter(lambda: list(islice(it, page_rows)), [])
    yield from stream_json_pages(record_type, pages, details=details, statistics=statistics)
