"""Which XLSX number formats are dates, and the text of a date cell: the same text that
python-calamine's values gave through ``cells.cell_text`` before the streaming reader (the
test corpus in tests/batches/test_sources_workbook_oracle.py compares the two).

An XLSX date is a number (days since 1899-12-30, or 1904-01-01) whose cell style has a date
format: a builtin id (14-22, 45, 47; 46 is an elapsed time) or a custom format code with a
date or time token outside quotes, brackets and escapes (``[h]`` alone is an elapsed time).
"""

from __future__ import annotations

import datetime as dt
import math

from .cells import cell_text

OTHER, DATETIME, DURATION = 0, 1, 2
_BUILTIN = {**{n: DATETIME for n in (*range(14, 23), 45, 47)}, 46: DURATION}
_DATE_LETTERS = frozenset("dmhysDMHYS")
_ELAPSED = frozenset("hmsHMS")
_MS_PER_DAY = 86_400_000
_EPOCH_1900 = dt.datetime(1899, 12, 31)  # serial 1 is 1900-01-01; serial 60 is Excel's
_EPOCH_1900_LATE = dt.datetime(1899, 12, 30)  # (fictitious) 1900-02-29, read as 02-28
_EPOCH_1904 = dt.datetime(1904, 1, 1)


def builtin_kind(format_id: int) -> int:
    return _BUILTIN.get(format_id, OTHER)


def format_kind(code: str) -> int:
    """``DATETIME``, ``DURATION`` or ``OTHER`` for a custom format code (its first section:
    the one for positive numbers)."""
    escaped = quoted = am_pm = False
    depth = 0
    bracket = ""  # the text inside the current [...]
    for char in code:
        if escaped:
            escaped = False
        elif quoted:
            quoted = char != '"'
        elif char in "\\_*":  # the next character is a literal (or a width, or a fill)
            escaped = True
        elif char == '"':
            quoted = True
        elif char == ";":
            return OTHER
        elif char == "[":
            depth += 1
            bracket = ""
        elif char == "]":
            elapsed = bracket and bracket.lower() == bracket[0].lower() * len(bracket)
            if depth == 1 and elapsed and bracket[0] in _ELAPSED:
                return DURATION  # [h], [mm], [ss]: elapsed time
            depth = max(depth - 1, 0)
        elif depth:
            bracket += char
        elif am_pm:
            if char in "pmPM/":
                return DATETIME  # AM/PM, A/P
        elif char in "aA":
            am_pm = True
        elif char in _DATE_LETTERS:
            return DATETIME
    return OTHER


def _milliseconds(value: float) -> int:
    scaled = value * _MS_PER_DAY
    return math.floor(scaled + 0.5) if scaled >= 0 else -math.floor(-scaled + 0.5)


def serial_text(value: float, kind: int, date_1904: bool) -> str:
    """The text of a date-formatted number: ``HH:MM:SS`` under one day, ``YYYY-MM-DD`` for a
    whole day, ISO 8601 date and time otherwise, ``[-]D day[s], H:MM:SS`` for an elapsed
    time; out of the calendar's range, the number."""
    if not math.isfinite(value):
        return cell_text(value)
    try:
        if kind == DURATION:
            return str(dt.timedelta(milliseconds=_milliseconds(value)))
        if value < 1.0:
            ms = _milliseconds(value) % _MS_PER_DAY
            return dt.time(
                ms // 3_600_000, ms // 60_000 % 60, ms // 1000 % 60, ms % 1000 * 1000
            ).isoformat()
        epoch = _EPOCH_1904 if date_1904 else _EPOCH_1900 if value < 60 else _EPOCH_1900_LATE
        moment = epoch + dt.timedelta(milliseconds=_milliseconds(value))
    except (OverflowError, ValueError):
        return cell_text(value)
    return moment.date().isoformat() if value.is_integer() else moment.isoformat()
