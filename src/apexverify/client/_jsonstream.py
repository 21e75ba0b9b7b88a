"""An incremental reader of the JSON export: one ``{"key": value, ...}`` object, read as its
bytes arrive, yielding each ``(key, value)`` pair as soon as it is complete.

Sans-IO (as the clients are): :meth:`ObjectStream.feed` takes bytes and returns the pairs
they completed, so the sync and the async clients drive the same parser. Memory holds one
unfinished pair at a time (plus the chunk being read), never the whole body; each value is
decoded by the standard library's ``json`` (``raw_decode``), so no new dependency.
"""

from __future__ import annotations

import codecs
import json
from typing import Any

from ._errors import ApexVerifyError

_WHITESPACE = " \t\r\n"
_DECODER = json.JSONDecoder()
# Consumed text is dropped once this much of the buffer has been read (keeps slicing rare).
_COMPACT_AT = 1 << 16


class JSONStreamError(ApexVerifyError, ValueError):
    """The body is not one JSON object."""


class ObjectStream:
    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")()
        self._buffer = ""
        self._pos = 0
        self._state = "start"  # start -> key -> colon -> value -> comma -> ... -> end
        self._key: str | None = None

    def feed(self, data: bytes, *, final: bool = False) -> list[tuple[str, Any]]:
        """The pairs ``data`` completed (``final``: it was the last chunk; an unfinished
        object then raises :class:`JSONStreamError`)."""
        self._buffer += self._text.decode(data, final=final)
        pairs: list[tuple[str, Any]] = []
        while self._step(pairs, final):
            pass
        if self._pos >= _COMPACT_AT:
            self._buffer, self._pos = self._buffer[self._pos :], 0
        if final and self._state != "end":
            raise JSONStreamError("the export ended before its closing brace")
        return pairs

    def _skip_whitespace(self) -> bool:
        """True when a significant character is at ``self._pos``."""
        buffer, pos = self._buffer, self._pos
        while pos < len(buffer) and buffer[pos] in _WHITESPACE:
            pos += 1
        self._pos = pos
        return pos < len(buffer)

    def _decode(self, final: bool) -> tuple[Any, bool]:
        """The JSON value at ``self._pos`` and True, or (None, False) when more text is
        needed. A value that ends exactly at the end of the buffer may be cut (``12`` of
        ``123``) unless it closes itself (an object, a list, a string)."""
        try:
            value, end = _DECODER.raw_decode(self._buffer, self._pos)
        except json.JSONDecodeError as exc:
            if final:
                raise JSONStreamError(f"not a JSON export: {exc}") from None
            return None, False
        if end == len(self._buffer) and not final and self._buffer[end - 1] not in '}]"':
            return None, False
        self._pos = end
        return value, True

    def _step(self, pairs: list[tuple[str, Any]], final: bool) -> bool:
        if self._state == "end":
            if self._skip_whitespace():
                raise JSONStreamError("text after the export's closing brace")
            return False
        if not self._skip_whitespace():
            return False
        char = self._buffer[self._pos]
        if self._state == "start":
            if char != "{":
                raise JSONStreamError("the export is not a JSON object")
            self._pos += 1
            self._state = "key"
        elif self._state in ("key", "comma"):
            if char == "}":
                self._pos += 1
                self._state = "end"
            elif self._state == "comma":
                if char != ",":
                    raise JSONStreamError(f"expected ',' or '}}', found {char!r}")
                self._pos += 1
                self._state = "key"
            else:
                if char != '"':
                    raise JSONStreamError(f"expected a key, found {char!r}")
                key, done = self._decode(final)
                if not done:
                    return False
                self._key, self._state = key, "colon"
        elif self._state == "colon":
            if char != ":":
                raise JSONStreamError(f"expected ':', found {char!r}")
            self._pos += 1
            self._state = "value"
        else:  # value
            value, done = self._decode(final)
            if not done:
                return False
            assert self._key is not None
            pairs.append((self._key, value))
            self._key, self._state = None, "comma"
        return True
