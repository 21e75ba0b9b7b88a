"""The batch parameters, checked before anything is sent.

The names and ranges are the workflow guide's parameter table (PUT ``/v1/batch/{uuid}``);
``/v1/unit`` takes the targeting and cache ones. A misspelled name (``use_globl_cache``) is a
:class:`TypeError`, as for any Python function; a value of the wrong type or out of range is
a :class:`ValueError` naming the parameter and its range. The server checks them again (its
422 is the authority); checking here means a typo never spends credits with defaults.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypedDict

RecordType = Literal["email", "phone"]
Decision = Literal["deliverable", "risky", "undeliverable", "unknown"]
DECISIONS: tuple[str, ...] = ("deliverable", "risky", "undeliverable", "unknown")
EXPORT_FORMATS: tuple[str, ...] = ("json", "xlsx", "csv")


class TargetingParams(TypedDict, total=False):
    """The parameters ``/v1/unit`` accepts (and every batch)."""

    target_audience: int | None
    target_market_industry: int | None
    target_objective: int | None
    use_account_cache: bool
    max_account_cache_backoff: int
    use_global_cache: bool
    max_global_cache_backoff: int


class BatchParams(TargetingParams, total=False):
    """The optional parameters of a batch (PUT ``/v1/batch/{uuid}``, or the upload's form)."""

    remove_duplicate: bool
    remove_wrong_email_format: bool
    remove_wrong_phone_format: bool


# name -> (low, high) for integers (None allowed: "not given"), or bool.
_INT_RANGES: dict[str, tuple[int, int]] = {
    "target_audience": (1, 23),
    "target_market_industry": (1, 115),
    "target_objective": (1, 16),
    "max_account_cache_backoff": (1, 180),
    "max_global_cache_backoff": (1, 180),
}
_NULLABLE = frozenset({"target_audience", "target_market_industry", "target_objective"})
_BOOLS_TARGETING = frozenset({"use_account_cache", "use_global_cache"})
_BOOLS_BATCH = frozenset(
    {"remove_duplicate", "remove_wrong_email_format", "remove_wrong_phone_format"}
)
TARGETING_NAMES = frozenset(_INT_RANGES) | _BOOLS_TARGETING
BATCH_NAMES = TARGETING_NAMES | _BOOLS_BATCH


def _unknown(function: str, name: str, allowed: Iterable[str]) -> TypeError:
    close = difflib.get_close_matches(name, sorted(allowed), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return TypeError(f"{function}() got an unexpected keyword argument {name!r}{hint}")


def check_params(
    function: str, params: Mapping[str, Any], *, allowed: frozenset[str] = BATCH_NAMES
) -> dict[str, Any]:
    """``params`` without the ``None`` values of nullable codes left out, or raise."""
    checked: dict[str, Any] = {}
    for name, value in params.items():
        if name not in allowed:
            raise _unknown(function, name, allowed)
        if name in _INT_RANGES:
            low, high = _INT_RANGES[name]
            if value is None and name in _NULLABLE:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer from {low} to {high}, not {value!r}")
        elif not isinstance(value, bool):
            raise ValueError(f"{name} must be True or False, not {value!r}")
        checked[name] = value
    return checked


def check_record_type(value: str) -> RecordType:
    if value not in ("email", "phone"):
        raise ValueError(f"type must be 'email' or 'phone', not {value!r}")
    return value  # type: ignore[return-value]


def check_country(value: str) -> str:
    # The server checks the code against ISO 3166-1; the SDK only its shape.
    if not (isinstance(value, str) and len(value) == 2 and value.isascii() and value.isalpha()):
        raise ValueError(f"target_country must be an ISO 3166-1 alpha-2 code, not {value!r}")
    return value.upper()


def check_name(value: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 255:
        raise ValueError("name must be 1 to 255 characters")
    return value


def check_description(value: str | None) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) > 2048):
        raise ValueError("description must be at most 2,048 characters")
    return value


def check_column(value: str | int | None) -> str | None:
    """The upload's ``column`` extension: ``"auto"``, a header name, or a 1-based number."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"column must be 'auto', a header name or a number from 1, not {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"column numbers start at 1, not {value}")
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError("column must be 'auto', a header name or a number from 1")
    return value


def check_header(value: bool | str | None) -> str | None:
    """The upload's ``header`` extension: ``"auto"``, ``True`` or ``False``."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if value in ("auto", "true", "false"):
        return value
    raise ValueError(f"header must be 'auto', True or False, not {value!r}")


def check_keep(value: str | Iterable[str] | None) -> str | None:
    """``keep`` of an export: decisions, as ``"deliverable,risky"`` or a list of them."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [item.strip() for item in items if item.strip()]
    if not names:
        raise ValueError(f"keep must name at least one of {', '.join(DECISIONS)}")
    for name in names:
        if name not in DECISIONS:
            raise ValueError(f"keep: {name!r} is not one of {', '.join(DECISIONS)}")
    return ",".join(dict.fromkeys(names))


def check_format(value: str) -> str:
    if value not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, not {value!r}")
    return value


def form_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
