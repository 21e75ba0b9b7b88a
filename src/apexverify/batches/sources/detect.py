"""Which column holds the emails or phones, and whether the first row is a header.

``column`` is ``auto``, a header name (case-insensitive, trimmed) or a 1-based number;
``header`` is ``auto``, ``true`` or ``false``. ``auto`` finds the column by its header name
(``Email``, ``E-mail``, ``Email Address``, ``email_address``, ``Phone``, ``Mobile``, ``Phone
Number``...: :data:`HEADER_NAMES`), else by content: the column where most of the first rows
look like the batch's type. The first row is a header when it names the column, or when its
cell in the chosen column does not look like a value while later ones do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ...errors import ParseError

HeaderMode = Literal["auto", "true", "false"]

# Header names, compared without case, spaces, '_', '-' and '.'; the first match wins, and
# exact names before names that merely contain "email" / "phone".
HEADER_NAMES: dict[str, tuple[str, ...]] = {
    "email": (
        "email",
        "emailaddress",
        "mail",
        "emailid",
        "workemail",
        "businessemail",
        "personalemail",
        "contactemail",
        "primaryemail",
        "courriel",
        "correo",
        "correoelectronico",
    ),
    "phone": (
        "phone",
        "phonenumber",
        "mobile",
        "mobilephone",
        "mobilenumber",
        "cell",
        "cellphone",
        "cellnumber",
        "telephone",
        "telephonenumber",
        "tel",
        "telefon",
        "telefono",
        "msisdn",
        "whatsapp",
        "workphone",
        "homephone",
        "contactnumber",
    ),
}
_CONTAINS = {"email": ("email", "mail"), "phone": ("phone", "mobile")}
_FOLD = re.compile(r"[\s_\-.]+")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[\d\s().\-/]{6,30}$")
_NAMES_SHOWN = 20


def fold(name: str) -> str:
    return _FOLD.sub("", name.strip().casefold())


def looks_like(record_type: str, text: str) -> bool:
    text = text.strip()
    if record_type == "email":
        return bool(_EMAIL.match(text))
    digits = sum(ch.isdigit() for ch in text)
    return bool(_PHONE.match(text)) and 6 <= digits <= 15


@dataclass(frozen=True)
class Choice:
    has_header: bool
    index: int  # 0-based


def describe_columns(rows: list[list[str]]) -> str:
    """The columns found, for an error message: the header names, or how many there are."""
    first = rows[0] if rows else []
    if not first:
        return "the file has no columns"
    names = ", ".join(repr(name.strip()[:40]) for name in first[:_NAMES_SHOWN])
    more = f" and {len(first) - _NAMES_SHOWN} more" if len(first) > _NAMES_SHOWN else ""
    return f"columns found: {names}{more}"


def choose(rows: list[list[str]], column: str, header: HeaderMode, record_type: str) -> Choice:
    """The column and header decision from the first ``rows`` of the file (raw rows, the
    possible header included). Raises :class:`ParseError` naming the columns found."""
    if not rows:
        raise ParseError("The file has no rows.")
    spec = column.strip()
    width = max(len(row) for row in rows)
    if spec.isascii() and spec.isdigit():  # "¹".isdigit() too, and int() refuses it
        index = int(spec) - 1
        if not 0 <= index < width:
            raise ParseError(
                f"Column {spec} is out of range: the file has {width} column"
                f"{'s' if width != 1 else ''} ({describe_columns(rows)})."
            )
        return Choice(_has_header(rows, index, header, record_type), index)
    if spec.casefold() != "auto":
        if header == "false":
            raise ParseError(f"Column {spec!r} is a name, but header=false says no header row.")
        wanted = spec.casefold()
        for index, name in enumerate(rows[0]):
            if name.strip().casefold() == wanted:
                return Choice(True, index)
        raise ParseError(f"No column named {spec!r} ({describe_columns(rows)}).")
    named = _by_name(rows[0], record_type) if header != "false" else None
    if named is not None:
        return Choice(True, named)
    # The first row is left out of the vote unless it is the only one or surely data.
    data = rows if len(rows) == 1 or header == "false" else rows[1:]
    found = _by_content(data, width, record_type)
    if found is None:
        what = "email addresses" if record_type == "email" else "phone numbers"
        raise ParseError(
            f"No column looks like {what} ({describe_columns(rows)}); "
            "choose one with the column field."
        )
    return Choice(_has_header(rows, found, header, record_type), found)


def _by_name(first: list[str], record_type: str) -> int | None:
    folded = [fold(name) for name in first]
    for name in HEADER_NAMES[record_type]:
        if name in folded:
            return folded.index(name)
    for index, name in enumerate(folded):
        if any(part in name for part in _CONTAINS[record_type]):
            return index
    return None


def _by_content(rows: list[list[str]], width: int, record_type: str) -> int | None:
    scores = [0] * width
    for row in rows:
        for index, cell in enumerate(row):
            if looks_like(record_type, cell):
                scores[index] += 1
    best = max(range(width), key=lambda i: scores[i], default=None)
    return best if best is not None and scores[best] > 0 else None


def _has_header(rows: list[list[str]], index: int, header: HeaderMode, record_type: str) -> bool:
    if header != "auto":
        return header == "true"
    first = rows[0][index] if index < len(rows[0]) else ""
    if looks_like(record_type, first):
        return False
    if _by_name(rows[0], record_type) is not None:
        return True
    return any(index < len(row) and looks_like(record_type, row[index]) for row in rows[1:])
