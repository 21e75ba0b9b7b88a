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

from collections.abc import Iterable, Iterator
from typing import Any

import orjson

SUMMARY_FIELDS = ("valid", "wrong", "unknown")
STATISTICS_KEY = "_statistics"
_UNVERIFIED: dict[str, Any] = {"valid": False, "wrong": False, "unknown": True}
_PIECE_BYTES = 65536

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


def stream_json(
    record_type: str,
    rows: Iterable[StoredRow],
    *,
    details: bool,
    statistics: dict[str, Any] | None,
) -> Iterator[bytes]:
    """Yield the export in ~64 KiB pieces."""
    identity = orjson.dumps(record_type)
    out = bytearray(b"{")
    first = True
    for value, raw in rows:
        key = orjson.dumps(value)
        head = b"{" + identity + b":" + key
        if not first:
            out += b","
        first = False
        out += key
        out += b":"
        out += _object_bytes(record_type, head, value, raw, details)
        if len(out) > _PIECE_BYTES:
            yield bytes(out)
            out.clear()
    if statistics is not None:
        if not first:
            out += b","
        out += orjson.dumps(STATISTICS_KEY) + b":" + orjson.dumps(statistics)
    out += b"}"
    yield bytes(out)
