"""Duplicate detection in constant memory.

A fixed 16 MiB bitmap indexed by the value's keyed hash is the first pass: a key whose bit is
clear is certainly new. A key whose bit is already set is only a *candidate* (a real repeat or
a bitmap collision, ~1% at a million distinct values); candidates are resolved exactly in SQL
after the load (``store.records.resolve_repeats``). Memory is the bitmap plus the candidate
keys, however large the file.
"""

from __future__ import annotations

from collections.abc import Iterable

BITMAP_BITS = 1 << 27  # 16 MiB
_MASK = BITMAP_BITS - 1


class DuplicateFinder:
    def __init__(self) -> None:
        self._bits = bytearray(BITMAP_BITS // 8)
        self.candidates: set[bytes] = set()

    def see(self, keys: Iterable[bytes]) -> None:
        bits = self._bits
        candidates = self.candidates
        for key in keys:
            slot = int.from_bytes(key[:8], "little") & _MASK
            byte, mask = slot >> 3, 1 << (slot & 7)
            if bits[byte] & mask:
                candidates.add(key)
            else:
                bits[byte] |= mask
