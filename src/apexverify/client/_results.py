"""Typed result rows (``/v1/unit``, the JSON export) and a finished batch's stats.

Each type has the documented fields (the workflow guide's tables, then our extra fields of
docs/results.md) and an ``extra`` mapping for any other key, so a field the server adds later
never breaks a client. ``raw`` is the JSON object as received; ``row["valid"]`` reads it,
for code written when :meth:`Client.unit` returned a plain ``dict``.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, TypeVar, Union

R = TypeVar("R", bound="_Row")


_DEFAULTS: dict[type, dict[str, Any]] = {}


def _defaults(cls: type) -> dict[str, Any]:
    """Each field's default, once per class (``dataclasses.fields`` is slow per row)."""
    if cls not in _DEFAULTS:
        _DEFAULTS[cls] = {f.name: f.default for f in fields(cls) if f.default is not MISSING}
    return _DEFAULTS[cls]


@dataclass(frozen=True, kw_only=True)
class _Row:
    _SKIP: ClassVar[frozenset[str]] = frozenset({"extra", "raw"})
    # Keyword-only, so each subclass's own fields come first and may lack defaults.
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls: type[R], data: dict[str, Any], **given: Any) -> R:
        """The row of one JSON result object. Built without ``__init__`` (a frozen
        dataclass's is a third of ``iter_results``' time per row): the values are the
        server's, and every field has a default or is ``given``."""
        values = dict(_defaults(cls))
        extra: dict[str, Any] = {}
        for key, value in data.items():
            if key in values:
                values[key] = value
            else:
                extra[key] = value
        for key in given:
            extra.pop(key, None)
        values.update(given, extra=extra, raw=data)
        row = object.__new__(cls)
        row.__dict__.update(values)
        return row

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.raw)


@dataclass(frozen=True)
class EmailResult(_Row):
    """One email's result: the ten documented fields, then the extra fields of
    docs/results.md (empty strings when not applicable)."""

    email: str
    valid: bool = False
    wrong: bool = False
    unknown: bool = False
    quality: str = "unknown"
    result: str = "unknown"
    is_syntax_error: bool = False
    is_free: bool = False
    is_role: bool = False
    is_disposable: bool = False
    is_catch_all: bool = False
    did_you_mean: str = ""
    evidence: str = ""
    reason: str = ""
    mx_host: str = ""
    mx_provider: str = ""
    smtp_code: int | str | None = None
    smtp_enhanced_code: str = ""
    smtp_reply: str = ""
    catch_all: str = ""
    # deliverable / risky / undeliverable / unknown, when the export carries it (docs/export.md)
    decision: str | None = None

    @property
    def value(self) -> str:
        return self.email


@dataclass(frozen=True)
class PhoneResult(_Row):
    """One phone number's result: the documented fields, then the extra fields."""

    phone: str
    valid: bool = False
    wrong: bool = False
    unknown: bool = False
    type: str = "unknown"
    status: str = "inconclusive"
    is_syntax_error: bool = False
    is_ported: bool = False
    current_network_mcc: str | None = None
    current_network_mnc: str | None = None
    operator: str | None = None
    country: str = ""
    libphonenumber_type: str = ""
    operator_source: str = ""
    number_portability: bool | None = None
    evidence: str = ""
    provider_line_type: str = ""
    original_operator: str = ""
    lookup_error: str = ""
    decision: str | None = None

    @property
    def value(self) -> str:
        return self.phone


Result = Union[EmailResult, PhoneResult]  # noqa: UP007 (a runtime alias, usable in isinstance)


def parse_result(data: dict[str, Any], key: str | None = None) -> Result:
    """The typed row of one result object; ``key`` is its export key (the original value),
    used when the object does not repeat it."""
    if "email" in data or ("phone" not in data and "quality" in data):
        return EmailResult.parse(data, email=str(data.get("email", key or "")))
    return PhoneResult.parse(data, phone=str(data.get("phone", key or "")))


@dataclass(frozen=True)
class Stats:
    """``stats`` of a finished batch (the Final details shape): the documented counts, the
    percentages and any other key in ``extra``. ``stats["total_verification"]`` reads the
    JSON (as when ``stats`` was a plain ``dict``)."""

    total: int = 0
    valid: int = 0
    wrong: int = 0
    unknown: int = 0
    duplicate: int = 0
    account_cache: int = 0
    global_cache: int = 0
    valid_perc: float = 0.0
    wrong_perc: float = 0.0
    unknown_perc: float = 0.0
    cancelled: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    _PREFIX: ClassVar[str] = "total_verification"

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Stats:
        names = {f.name for f in fields(cls)} - {"extra", "raw"}
        known: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            short = "total" if key == cls._PREFIX else key.removeprefix(cls._PREFIX + "_")
            if key.startswith(cls._PREFIX) and short in names:
                known[short] = float(value) if short.endswith("_perc") else int(value)
            else:
                extra[key] = value
        return cls(**known, extra=extra, raw=dict(data))

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    @property
    def from_caches(self) -> int:
        return self.account_cache + self.global_cache
