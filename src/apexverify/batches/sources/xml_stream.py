"""XML parts of a workbook read as a stream of events with pyexpat, safely.

Why pyexpat and not ElementTree: its callbacks run on the bytes as they inflate, nothing of
the document is kept, and a handler can be a C function (``list.append``) so the text of a
cell costs no Python frame (docs/benchmarks.md, "Table input": 2.6x less CPU than
iterparse).

Why it is safe: a workbook part never has a document type declaration, so any ``<!DOCTYPE``
is refused before its first entity can be declared (no billion laughs, no external entity);
parameter entities are never parsed. Malformed XML is a :class:`ParseError` naming the part.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from typing import IO, Any
from xml.parsers import expat

from ...errors import ParseError

CHUNK = 256 * 1024  # inflated bytes fed to the parser at a time
# A cell's text past this is refused: Excel holds at most 32,767 characters in a cell, and
# a CSV field is limited to 131,072 (``read.FIELD_LIMIT``).
MAX_CELL_CHARS = 131_072
_ROOT = re.compile(rb"<([A-Za-z_][\w.\-]*:)?([A-Za-z_][\w.\-]*)[\s/>]")


class _Refused(Exception):
    """Raised from a handler: pyexpat stops and re-raises it from ``Parse``."""


def _refuse_doctype(*_args: Any) -> None:
    raise _Refused("a document type declaration (refused: entities could expand without end)")


def new_parser(namespaces: bool = False) -> expat.XMLParserType:
    """A parser that refuses DTDs. ``namespaces``: names as ``URI local`` (for the small
    parts, where the prefixes are not known); the large ones use :func:`root_prefix`."""
    parser = expat.ParserCreate(namespace_separator=" " if namespaces else None)
    parser.buffer_text = True
    parser.buffer_size = 64 * 1024
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_doctype
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    return parser


def root_prefix(head: bytes, local: str) -> str:
    """The namespace prefix (``""`` or ``"x:"``) of the root element, named ``local``, from
    the first bytes of a part: the big parts are parsed without namespace processing (it
    costs), so their element names are matched with this prefix."""
    found = _ROOT.search(head)  # "<?xml" and "<!--" do not match: a letter follows "<"
    if found is None or found.group(2).decode("ascii", "replace") != local:
        return ""  # not the expected root: the parse will find nothing
    return (found.group(1) or b"").decode("ascii", "replace")


def feed_chunk(parser: expat.XMLParserType, data: bytes, part: str, final: bool = False) -> None:
    """Parse the next bytes of ``part``; XML errors become a :class:`ParseError`."""
    try:
        parser.Parse(data, final)
    except expat.ExpatError as exc:
        raise ParseError(f"The workbook's {part} is not well-formed XML ({exc}).") from None
    except _Refused as exc:
        raise ParseError(f"The workbook's {part} holds {exc}.") from None


def feed(
    parser: expat.XMLParserType,
    stream: IO[bytes],
    part: str,
    after_chunk: Callable[[], None] | None = None,
    first: bytes = b"",
) -> None:
    """Parse ``stream`` to its end in chunks (``first`` is its already read start), calling
    ``after_chunk`` after each."""
    try:
        data = first or stream.read(CHUNK)
        while data:
            feed_chunk(parser, data, part)
            if after_chunk is not None:
                after_chunk()
            data = stream.read(CHUNK)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ParseError(f"The workbook's {part} cannot be inflated ({exc}).") from None
    feed_chunk(parser, b"", part, final=True)
    if after_chunk is not None:
        after_chunk()


def too_long(part: str, where: str) -> ParseError:
    return ParseError(
        f"The workbook's {part} has a cell {where} longer than {MAX_CELL_CHARS} characters."
    )


def open_part(archive: zipfile.ZipFile, name: str, label: str | None = None) -> IO[bytes] | None:
    """One part of a workbook's archive, or None when it has none by that name; a part that
    cannot be opened (damaged, an unknown compression, encrypted) is a ``ParseError`` naming
    it (``label``, else its name)."""
    try:
        return archive.open(name)
    except KeyError:
        return None
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError) as exc:
        raise ParseError(f"The workbook's {label or name} cannot be opened ({exc}).") from None
