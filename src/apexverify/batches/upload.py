"""Validation of an uploaded file while it streams to disk.

The guide accepts UTF-8 text, one entry per line, no header, no BOM, no commas or quotes.
Anything else is a ``parse_error`` at upload, before a batch exists, so a client never polls a
batch that can never parse. Memory stays constant: only the current chunk is held.
"""

from __future__ import annotations

import codecs
import re

from ..errors import ParseError, PayloadTooLarge

MAX_LINE_BYTES = 4096
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_DELIMITERS = (b",", b";", b"\t", b'"')
# A first line made only of letters, spaces, '_' and '-' cannot be an entry: it is a header.
_HEADER = re.compile(r"^[A-Za-z][A-Za-z _-]*$")


class UploadValidator:
    """Feed chunks in order with :meth:`feed`, then call :meth:`finish`."""

    def __init__(self, record_type: str, max_bytes: int) -> None:
        self._record_type = record_type
        self._max_bytes = max_bytes
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.size = 0
        self._line_bytes = 0  # bytes of the current, unfinished line
        self._first_line: bytearray | None = bytearray()
        self.has_content = False
        self._head = bytearray()  # the first bytes, to spot a BOM split across chunks

    def feed(self, chunk: bytes) -> None:
        if self.size < 3:
            self._head += chunk[:3]
            if bytes(self._head[:3]).startswith(_BOMS):
                raise ParseError(
                    "The file starts with a byte order mark (BOM); save it as UTF-8 without BOM."
                )
        self.size += len(chunk)
        if self.size > self._max_bytes:
            raise PayloadTooLarge(f"The file is larger than {self._max_bytes} bytes.")
        if b"\x00" in chunk:
            raise ParseError("The file contains NUL bytes: it is binary or UTF-16, not UTF-8 text.")
        for delimiter in _DELIMITERS:
            if delimiter in chunk:
                raise ParseError(
                    f"The file contains {delimiter.decode()!r}: upload one entry per line, not CSV."
                )
        try:
            self._decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            raise ParseError("The file is not valid UTF-8 text.") from exc
        self._check_lines(chunk)

    def _check_lines(self, chunk: bytes) -> None:
        pieces = chunk.split(b"\n")
        if self._first_line is not None:
            self._first_line += pieces[0]
            if len(pieces) > 1 or len(self._first_line) > MAX_LINE_BYTES:
                self._check_header(bytes(self._first_line))
        if len(pieces) == 1:
            self._line_bytes += len(chunk)
        else:
            self._line_bytes = max(
                self._line_bytes + len(pieces[0]), max(map(len, pieces[1:-1]), default=0)
            )
            if self._line_bytes <= MAX_LINE_BYTES:
                self._line_bytes = len(pieces[-1])
        if self._line_bytes > MAX_LINE_BYTES:
            raise ParseError(f"A line is longer than {MAX_LINE_BYTES} bytes: one entry per line.")
        if not self.has_content and chunk.strip():
            self.has_content = True

    def _check_header(self, first: bytes) -> None:
        self._first_line = None
        line = first.decode("utf-8", "replace").strip()
        if line and _HEADER.match(line):
            raise ParseError(
                f"The first line {line[:40]!r} looks like a header; upload entries only."
            )

    def finish(self) -> None:
        try:
            self._decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise ParseError("The file ends in the middle of a UTF-8 character.") from exc
        if self._first_line is not None:
            self._check_header(bytes(self._first_line))
        if not self.has_content:
            raise ParseError("The file is empty.")


_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # legacy .xls (and .doc)
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


class TableUploadValidator:
    """The checks of a table upload (the ``column`` extension) while it streams: the size
    limit, and for a text file (anything that does not start as a zip) UTF-8 without NUL
    bytes. What the table holds is checked once it is on disk (``sources.convert``)."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.size = 0
        self._head = bytearray()
        self._binary: bool | None = None  # a zip (XLSX/ODS): decided by the first 4 bytes

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._max_bytes:
            raise PayloadTooLarge(f"The file is larger than {self._max_bytes} bytes.")
        if self._binary is None:
            self._head += chunk[:4]
            if len(self._head) < 4:
                return self._check_text(chunk)
            head = bytes(self._head[:4])
            if head.startswith(_UTF16_BOMS):
                raise ParseError("The file is UTF-16 text; save it as CSV UTF-8.")
            if head == _OLE_MAGIC:
                raise ParseError(
                    "The file is a legacy Excel .xls workbook; save it as .xlsx or CSV."
                )
            self._binary = head == _ZIP_MAGIC
        if not self._binary:
            self._check_text(chunk)

    def _check_text(self, chunk: bytes) -> None:
        if b"\x00" in chunk:
            raise ParseError(
                "The file contains NUL bytes: it is neither UTF-8 text nor an XLSX/ODS workbook."
            )
        try:
            self._decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            raise ParseError("The file is not valid UTF-8 text; save it as CSV UTF-8.") from exc

    def finish(self) -> None:
        if self.size == 0:
            raise ParseError("The file is empty.")
        if not self._binary:
            try:
                self._decoder.decode(b"", final=True)
            except UnicodeDecodeError as exc:
                raise ParseError("The file ends in the middle of a UTF-8 character.") from exc
