"""The merged-back table: the customer's own file, every column and every row in file order,
with the result columns appended (``docs/export.md``, "Merged files").

Pure streaming join, no database or file access: the caller gives the original rows (an
iterator over the file, row ``i`` being the row whose record has ``seq == i``) and the batch's
records ordered by ``seq`` (one paged cursor), and this walks both once. Memory holds one row.

- A row without a record (a blank cell) gets empty result columns.
- A repeated value (a duplicate row) carries its first occurrence's result, and a malformed
  value its stored syntax-error result, also when ``remove_duplicate`` / ``remove_wrong_*``
  left them out of the JSON: the merged file is the customer's file, whole.
- A filter (``keep`` or a :class:`ResultFilter`) keeps only the matching rows; a row without
  a result matches no decision.
- A result column named like an original column (case-insensitive) is renamed
  ``<name>_apexverify`` (``_apexverify2``, ... if that is taken too); original names are never
  changed.
- Short rows are padded to the header's width, so the result columns line up; cells past the
  header's width (no column name) are not carried over.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

import orjson

from .decisions import decision
from .filters import ResultFilter

COLLISION_SUFFIX: Final = "_apexverify"

# After the decision and the documented verdict fields, the extras a list cleaner acts on.
_EMAIL_TAIL: Final = ("reason", "evidence", "did_you_mean", "smtp_code")
_PHONE_TAIL: Final = ("evidence",)
_EMAIL_FIELDS: Final = (
    "valid",
    "wrong",
    "unknown",
    "quality",
    "result",
    "is_syntax_error",
    "is_free",
    "is_role",
    "is_disposable",
    "is_catch_all",
)
_PHONE_FIELDS: Final = (
    "valid",
    "wrong",
    "unknown",
    "type",
    "status",
    "is_syntax_error",
    "is_ported",
    "current_network_mcc",
    "current_network_mnc",
    "operator",
)

# (seq, value, result): the result as stored JSON text, a decoded dict, or None.
ResultRow = tuple[int, str, str | bytes | Mapping[str, Any] | None]


def result_keys(record_type: str) -> tuple[str, ...]:
    """The result columns appended to every row: ``decision``, the documented verdict
    fields (in the order of the hosted API's field reference), then the extras."""
    if record_type == "email":
        return ("decision", *_EMAIL_FIELDS, *_EMAIL_TAIL)
    if record_type == "phone":
        return ("decision", *_PHONE_FIELDS, *_PHONE_TAIL)
    raise ValueError(f"unknown record type {record_type!r}")


def merged_header(original: Sequence[str], record_type: str) -> list[str]:
    """The original header as it is, then the result columns, renamed where they collide."""
    taken = {name.strip().casefold() for name in original}
    out = list(original)
    for key in result_keys(record_type):
        name, n = key, 1
        while name.casefold() in taken:
            name = f"{key}{COLLISION_SUFFIX}{'' if n == 1 else n}"
            n += 1
        taken.add(name.casefold())
        out.append(name)
    return out


def _decoded(raw: str | bytes | Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if raw is None or isinstance(raw, Mapping):
        return raw
    return orjson.loads(raw)  # type: ignore[no-any-return]


def merge_rows(
    record_type: str,
    width: int,
    originals: Iterable[Sequence[str]],
    results: Iterable[ResultRow],
    *,
    result_filter: ResultFilter | None = None,
) -> Iterator[list[Any]]:
    """Rows of the merged table (without its header): each original row cut or padded to
    ``width`` cells, then the values of :func:`result_keys`. ``results`` must be ordered by
    seq; a result whose seq has no original row (cannot happen for a consistent batch) is
    dropped rather than shifting the rows after it."""
    keys = result_keys(record_type)[1:]
    blank: list[Any] = [None] * (len(keys) + 1)
    pending = iter(results)
    nxt = next(pending, None)
    active = result_filter is not None and not result_filter.empty
    for seq, original in enumerate(originals):
        while nxt is not None and nxt[0] < seq:
            nxt = next(pending, None)
        cells: list[Any] = list(original[:width])
        if len(cells) < width:
            cells.extend([""] * (width - len(cells)))
        if nxt is not None and nxt[0] == seq:
            value, result = nxt[1], _decoded(nxt[2])
            nxt = next(pending, None)
        else:
            value, result = "", None
        if active and not result_filter.matches(record_type, value, result):  # type: ignore[union-attr]
            continue
        if result is None:
            cells.extend(blank)
        else:
            cells.append(decision(record_type, result))
            cells.extend(map(result.get, keys))
        yield cells
