"""What a table upload is: its format (from its first bytes, the file name as a hint) and,
for text, its delimiter (from its first lines)."""

from __future__ import annotations

import csv
import io
import itertools
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from ...errors import ParseError

SourceFormat = Literal["csv", "xlsx", "ods"]
ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # legacy .xls (and .doc): not read
DELIMITERS = (",", ";", "\t", "|")
SAMPLE_BYTES = 64 * 1024
_SAMPLE_ROWS = 50
_ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"


def detect_format(path: Path, filename: str | None) -> SourceFormat:
    """``xlsx`` or ``ods`` for a zip workbook (told apart by its entries, not its name),
    ``csv`` for text; anything else is a :class:`ParseError`."""
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(OLE_MAGIC):
        raise ParseError("The file is a legacy Excel .xls workbook; save it as .xlsx or CSV.")
    if not head.startswith(ZIP_MAGIC):
        return "csv"
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "mimetype" in names:
                with archive.open("mimetype") as entry:  # at most its first bytes: a bomb?
                    if entry.read(len(_ODS_MIMETYPE) + 8).strip() == _ODS_MIMETYPE:
                        return "ods"
            if "xl/workbook.xml" in names:
                return "xlsx"
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
        message = f"The file is a damaged zip archive, not a readable workbook ({exc})."
        raise ParseError(message) from None
    hint = (filename or "").lower().rsplit(".", 1)[-1]
    expected = "an ODS" if hint == "ods" else "an XLSX"
    raise ParseError(f"The file is a zip archive but not {expected} workbook.")


def read_sample(path: Path) -> str:
    """The first lines of a text upload (validated UTF-8 at upload), the BOM removed."""
    with path.open("rb") as handle:
        data = handle.read(SAMPLE_BYTES)
    return data.decode("utf-8-sig", "ignore")  # "ignore": a character cut at the end


def separator_line(sample: str) -> str | None:
    """Excel's ``sep=;`` first line, which names the delimiter; ``None`` when absent."""
    first = sample.split("\n", 1)[0].strip()
    if len(first) == 5 and first.lower().startswith("sep=") and first[4] in DELIMITERS:
        return first[4]
    return None


def sniff_delimiter(sample: str) -> str:
    """The delimiter that splits the first rows into the same number (more than one) of
    fields most consistently; a one-column file gets ``,``. (csv.Sniffer guesses letters as
    delimiters on one-column lists, hence this narrower vote.)"""
    lines = sample.splitlines(keepends=True)
    if len(sample) >= SAMPLE_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the sample cut the last line
    text = "".join(lines)
    best, best_score = ",", 0.0
    for delimiter in DELIMITERS:
        try:
            rows = [row for row in itertools.islice(_reader(text, delimiter), _SAMPLE_ROWS) if row]
        except csv.Error:
            continue
        widths = [len(row) for row in rows]
        if not widths:
            continue
        common = max(set(widths), key=widths.count)
        if common < 2:
            continue
        score = widths.count(common) / len(widths) + common / 1000  # ties: more fields
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _reader(text: str, delimiter: str) -> Iterator[list[str]]:
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
