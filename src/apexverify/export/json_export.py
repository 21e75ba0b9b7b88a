"""JSON export: an object keyed by the original value, streamed piece by piece.

``include_details=false`` maps each value to ``{"<type>": value, "valid", "wrong", "unknown"}``
only; ``include_statistics=true`` adds one key ``"_statistics"`` (no email contains no ``@``
and no phone number starts with ``_``, so it cannot collide with a record) holding the batch
stats. See ``docs/export.md``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

SUMMARY_FIELDS = ("valid", "wrong", "unknown")
STATISTICS_KEY = "_statistics"


def record_object(
    record_type: str, value: str, result: dict[str, Any] | None, details: bool
) -> dict[str, Any]:
    result = result or {"valid": False, "wrong": False, "unknown": True}
    if not details:
        return {record_type: value, **{k: result.get(k) for k in SUMMARY_FIELDS}}
    return {record_type: value, **result}


def stream_json(
    record_type: str,
    rows: Iterable[tuple[str, dict[str, Any] | None]],
    *,
    details: bool,
    statistics: dict[str, Any] | None,
) -> Iterator[bytes]:
    """Yield the export in ~64 KiB pieces."""
    buffer: list[str] = ["{"]
    size = 0
    first = True
    dumps = json.dumps
    for value, result in rows:
        obj = record_object(record_type, value, result, details)
        piece = (
            ("" if first else ",")
            + dumps(value, ensure_ascii=False)
            + ":"
            + dumps(obj, ensure_ascii=False)
        )
        first = False
        buffer.append(piece)
        size += len(piece)
        if size > 65536:
            yield "".join(buffer).encode()
            buffer, size = [], 0
    if statistics is not None:
        buffer.append(("" if first else ",") + dumps(STATISTICS_KEY) + ":" + dumps(statistics))
    buffer.append("}")
    yield "".join(buffer).encode()
