"""The kinds of a record, without SQLAlchemy: the parse workers import this, and importing the
models would add about 35 MB to each worker's memory (measured with ru_maxrss)."""

from __future__ import annotations

from enum import StrEnum


class RecordKind(StrEnum):
    """What a line of an upload is: a valid-format first occurrence (verified), a line that
    is not a valid value, or a later occurrence of a value already in the batch."""

    VALID = "valid"
    WRONG = "wrong"
    DUPLICATE = "duplicate"
