"""Dashboard forms -> the same ``BatchParameters`` model that validates the API's PUT body.

HTML forms leave unticked checkboxes out, so every boolean of the model is rendered as a
checkbox and read as "present or not"; the other fields are sent only when filled in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..batches.params import BatchParameters
from ..batches.sources.convert import TableRequest

BOOLEAN_FIELDS = tuple(
    name for name, info in BatchParameters.model_fields.items() if info.annotation is bool
)
VALUE_FIELDS = tuple(name for name in BatchParameters.model_fields if name not in BOOLEAN_FIELDS)
NAME_MAX = 255
DESCRIPTION_MAX = 2048
COLUMN_MAX = 255
HEADER_MODES = ("auto", "true", "false")
# Files read as tables (the API's ``column`` extension, docs/input.md) when the Column field is
# left empty: a spreadsheet or a CSV is never a one-per-line list by intent.
TABLE_SUFFIXES = (".csv", ".tsv", ".xlsx", ".ods")
ACCEPT = ".txt,.csv,.tsv,.xlsx,.ods,text/plain,text/csv,text/tab-separated-values"


@dataclass
class UploadForm:
    """What the user typed, kept to re-render the form after an error."""

    values: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)
    params: BatchParameters | None = None

    def table(self, filename: str | None) -> TableRequest | None:
        """The ``column``/``header`` request for this file: the Column field when filled in,
        ``auto`` for a table file (by its name), else None (one value per line)."""
        column = str(self.values.get("column") or "").strip()
        header = str(self.values.get("header") or "auto")
        if not column and (filename or "").lower().endswith(TABLE_SUFFIXES):
            column = "auto"
        return TableRequest(column, header) if column else None  # type: ignore[arg-type]

    @property
    def name(self) -> str:
        return str(self.values.get("name", "")).strip()

    @property
    def description(self) -> str | None:
        text = str(self.values.get("description", "")).strip()
        return text or None


def defaults() -> dict[str, Any]:
    return {
        name: info.default
        for name, info in BatchParameters.model_fields.items()
        if info.default is not None and not info.is_required()
    } | {"type": "email", "target_country": "US"}


def read_parameters(form: Any) -> UploadForm:
    """Validate the parameter fields (the upload form's, and the "change parameters" form)."""
    values: dict[str, Any] = {}
    data: dict[str, Any] = {}
    for name in VALUE_FIELDS:
        raw = form.get(name)
        if isinstance(raw, str) and raw.strip() != "":
            data[name] = values[name] = raw.strip()
    for name in BOOLEAN_FIELDS:
        data[name] = values[name] = form.get(name) == "true"
    result = UploadForm(values=values)
    try:
        result.params = BatchParameters.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc = str(error["loc"][0]) if error["loc"] else "form"
            result.errors.setdefault(loc, error["msg"])
    return result


def read_upload_form(form: Any) -> UploadForm:
    """The parameters plus the batch's name and description."""
    result = read_parameters(form)
    result.values.update(name=form.get("name") or "", description=form.get("description"))
    column, header = form.get("column"), form.get("header")
    result.values.update(
        column=column.strip() if isinstance(column, str) else "",
        header=header.strip().lower() if isinstance(header, str) and header.strip() else "auto",
    )
    if len(result.values["column"]) > COLUMN_MAX:
        result.errors["column"] = f"At most {COLUMN_MAX} characters."
    if result.values["header"] not in HEADER_MODES:
        result.errors["header"] = "Choose auto, yes or no."
        result.values["header"] = "auto"
    if not result.name or len(result.name) > NAME_MAX:
        result.errors["name"] = f"Give the batch a name (1 to {NAME_MAX} characters)."
    if result.description and len(result.description) > DESCRIPTION_MAX:
        result.errors["description"] = f"At most {DESCRIPTION_MAX} characters."
    return result
