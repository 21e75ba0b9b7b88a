"""Cell values as text: what a spreadsheet cell shows, and what the parse gets of it."""

from __future__ import annotations

import datetime as dt

# Above this a float that happens to be whole is a measurement, not an integer typed in.
_EXACT_FLOAT = 2**53


def cell_text(value: object) -> str:
    """The text of a workbook cell (python-calamine's types). Whole numbers read as ``123``,
    not ``123.0``, so a phone number stored as a number becomes its digits."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):  # before int: bool is an int
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < _EXACT_FLOAT:
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)


def clean_value(text: str) -> str:
    """A cell as one line of the derived file: trimmed, line breaks as spaces, no NUL
    (PostgreSQL text refuses it)."""
    if "\n" in text or "\r" in text or "\x00" in text:
        text = text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
        text = text.replace("\x00", "")
    return text.strip()
