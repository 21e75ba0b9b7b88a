"""The columns of a tabular export (XLSX), derived from the result types.

A stored result is ``EmailResult.to_dict()`` / ``PhoneResult.to_dict()``: the documented
dataclass fields with the engine's ``extra`` dict merged in next to them. A table therefore has

1. the identity column (``email`` / ``phone``), then the documented fields in dataclass order
   (:func:`documented_columns`, read from :func:`dataclasses.fields`, so a field added to the
   result type becomes a column without touching this package);
2. the extra fields, one column each (:data:`KNOWN_EXTRA_COLUMNS` when the caller does not say
   which extras its rows hold, see ``xlsx_export``);
3. a final :data:`OVERFLOW_COLUMN` (``extra``) holding, as compact JSON, any key of a row that
   has no column of its own, so nothing is ever dropped.

This module imports only the engines' result types and field lists (no web, database or batch
code).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from ..verify.base import EmailResult, PhoneResult
from ..verify.email.verdicts import EXTRA_FIELDS as EMAIL_EXTRA_FIELDS

OVERFLOW_COLUMN = "extra"

# The extra keys each engine puts in its results, in export order. Keep in step with the
# engines (tests/export checks these lists against them):
# - email engine: ``verify/email/verdicts.py`` ``EXTRA_FIELDS``, imported (every key on every
#   result, None when not applicable); the email sandbox sets no extras;
# - phone engine: ``verify/phone/analysis.py`` ``base_extra`` (every key on every result);
#   the phone sandbox sets ``sandbox``.
KNOWN_EXTRA_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "email": EMAIL_EXTRA_FIELDS,
    "phone": (
        "country",
        "libphonenumber_type",
        "operator_source",
        "number_portability",
        "evidence",
        "provider_line_type",
        "original_operator",
        "lookup_error",
        "sandbox",
    ),
}

_RESULT_TYPES: Mapping[str, type[EmailResult] | type[PhoneResult]] = {
    "email": EmailResult,
    "phone": PhoneResult,
}


def _result_type(record_type: str) -> type[EmailResult] | type[PhoneResult]:
    try:
        return _RESULT_TYPES[record_type]
    except KeyError:
        raise ValueError(f"unknown record type {record_type!r}") from None


def documented_columns(record_type: str) -> tuple[str, ...]:
    """The identity column, then every documented result field (the dataclass fields but
    ``extra``), in declaration order."""
    names = (f.name for f in dataclasses.fields(_result_type(record_type)))
    return (record_type, *(name for name in names if name != "extra"))


def extra_columns_for(record_type: str, keys: Iterable[str]) -> list[str]:
    """``keys`` (the JSON keys found in a batch's results, in any order, duplicates allowed)
    as extra columns: documented fields and the identity dropped, the engine's known extras
    first in their export order, then the other keys in first-seen order."""
    skip = set(documented_columns(record_type))
    found = dict.fromkeys(key for key in keys if key not in skip)
    known = [key for key in KNOWN_EXTRA_COLUMNS.get(record_type, ()) if key in found]
    return known + [key for key in found if key not in known]


def collect_extra_columns(
    record_type: str, results: Iterable[Mapping[str, Any] | None]
) -> list[str]:
    """Scan result dicts once (only the key set is kept) and return their extra columns, ready
    for ``write_xlsx(..., extra_columns=...)``."""
    seen: dict[str, None] = {}
    for result in results:
        if result:
            seen.update(dict.fromkeys(result))
    return extra_columns_for(record_type, seen)
