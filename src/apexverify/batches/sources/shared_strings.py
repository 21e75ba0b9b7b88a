"""An XLSX's shared strings (``xl/sharedStrings.xml``) kept on disk, not in memory.

A sheet's text cells are indexes into this table, which can hold millions of distinct
strings (one per email address). Each string's UTF-8 bytes are appended to one temporary
file and its end offset to a second; both are then mapped (``mmap``), so a lookup is two
slices and a decode, and the process's memory does not grow with the table (the page cache
holds what is read often).
"""

from __future__ import annotations

import mmap
import tempfile
from array import array
from typing import IO, Any

from ...errors import ParseError
from . import xml_stream

PART = "shared strings (xl/sharedStrings.xml)"
_FLUSH = 16_384  # offsets buffered before they are written


class SharedStrings:
    """``strings[i]`` is the text of shared string ``i``; :meth:`close` frees the files."""

    def __init__(self) -> None:
        # Closed by close(), which the reader calls from its ExitStack.
        self._data: IO[bytes] = tempfile.TemporaryFile(prefix="apexverify-sst-")  # noqa: SIM115
        self._ends: IO[bytes] = tempfile.TemporaryFile(prefix="apexverify-sst-")  # noqa: SIM115
        self._maps: list[mmap.mmap] = []
        self._bytes: Any = b""
        self._offsets: Any = memoryview(array("q"))
        self.count = 0

    def load(self, stream: IO[bytes]) -> None:
        """Read ``<sst>`` from ``stream``: each ``<si>``'s text is its ``<t>`` runs joined
        (rich text), phonetic guides (``<rPh>``) left out."""
        head = stream.read(xml_stream.CHUNK)
        prefix = xml_stream.root_prefix(head, "sst")
        si, t, rph = prefix + "si", prefix + "t", prefix + "rPh"
        parser = xml_stream.new_parser()
        parts: list[str] = []
        runs: list[str] = []
        ends = array("q")
        position = 0
        skipping = 0  # inside <rPh>
        length = 0
        write = self._data.write

        def start(name: str, _attrs: dict[str, str]) -> None:
            nonlocal skipping
            if name == t:
                if not skipping:
                    parser.CharacterDataHandler = parts.append
            elif name == rph:
                skipping += 1
            elif name == si:
                runs.clear()

        def end(name: str) -> None:
            nonlocal skipping, position, length
            if name == t:
                if parts:
                    parser.CharacterDataHandler = None
                    text = parts[0] if len(parts) == 1 else "".join(parts)
                    parts.clear()
                    length += len(text)
                    if length > xml_stream.MAX_CELL_CHARS:
                        raise xml_stream.too_long(PART, f"(string {len(ends)})")
                    runs.append(text)
                else:
                    parser.CharacterDataHandler = None
            elif name == rph:
                skipping -= 1
            elif name == si:
                encoded = (runs[0] if len(runs) == 1 else "".join(runs)).encode(
                    "utf-8", "surrogatepass"
                )
                runs.clear()
                length = 0
                write(encoded)
                position += len(encoded)
                ends.append(position)

        def flush() -> None:
            if len(ends) >= _FLUSH:
                self._ends.write(ends.tobytes())
                self.count += len(ends)
                del ends[:]

        parser.StartElementHandler = start
        parser.EndElementHandler = end
        xml_stream.feed(parser, stream, PART, flush, head)
        self._ends.write(ends.tobytes())
        self.count += len(ends)
        self._map()

    def _map(self) -> None:
        self._data.flush()
        self._ends.flush()
        if self.count == 0:
            return
        ends = mmap.mmap(self._ends.fileno(), 0, access=mmap.ACCESS_READ)
        self._maps.append(ends)
        self._offsets = memoryview(ends).cast("q")
        if self._offsets[-1] > 0:
            data = mmap.mmap(self._data.fileno(), 0, access=mmap.ACCESS_READ)
            self._maps.append(data)
            self._bytes = data

    def __getitem__(self, index: int) -> str:
        if not 0 <= index < self.count:
            raise ParseError(
                f"The workbook's sheet refers to shared string {index}, but the workbook "
                f"has {self.count}."
            )
        offsets = self._offsets
        start = offsets[index - 1] if index else 0
        return str(self._bytes[start : offsets[index]].decode("utf-8", "surrogatepass"))

    def close(self) -> None:
        if isinstance(self._offsets, memoryview):
            self._offsets.release()
        for mapped in self._maps:
            mapped.close()
        self._maps.clear()
        self._data.close()
        self._ends.close()
