"""Duplicate detection in constant memory.

A fixed open-addressing table of 2^22 slots (32 MiB: a fingerprint and a ``seq`` per slot)
remembers, for each distinct value seen, the ``seq`` of its first row. A row whose
fingerprint is found is a *candidate* repeat; a row that finds an empty slot is the first of
its value. When the probes run out (more distinct values than the table holds) the row is a
candidate too. Candidates and the remembered first rows of their fingerprints are resolved
exactly in SQL after the load (``repository/repeats.py``) by primary-key look-ups.

Why exact: take any value V and its first row R. Either R was stored (then every later row of
V finds its fingerprint, becomes a candidate and brings R along) or R was a candidate itself
(probes ran out), and so is every later row of V, which cannot have been stored after it...
unless a slot freed, which never happens. A fingerprint shared by two values only adds rows to
the exact check. So all rows of V are compared.

Memory is the table plus the candidate seqs, whatever the size of the file.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence

SLOT_BITS = 22
_MASK = (1 << SLOT_BITS) - 1
_MAX_PROBES = 8


class DuplicateFinder:
    def __init__(self) -> None:
        size = 1 << SLOT_BITS
        self._fingerprints = array("I", [0]) * size  # 0 = empty
        self._first = array("i", [0]) * size
        self._candidates: list[int] = []
        self._first_of_candidates: set[int] = set()

    def see(self, rows: Iterable[tuple[int, bytes]]) -> None:
        """``(seq, key_hash)`` pairs in file order."""
        rows = list(rows)
        keys = b"".join(key[:8] for _seq, key in rows)
        self._see([seq for seq, _key in rows], memoryview(keys).cast("Q"))

    def see_block(self, seqs: Sequence[int], keys: bytes) -> None:
        """The rows of one classified block: their seqs, and their 16-byte keys joined."""
        # The first 8 bytes of each key as one native unsigned integer: every other 8-byte
        # word of the joined keys, read by the buffer protocol instead of a slice and an
        # int.from_bytes per row.
        self._see(seqs, memoryview(keys).cast("Q")[::2])

    def _see(self, seqs: Iterable[int], hashes: Iterable[int]) -> None:
        fps, first = self._fingerprints, self._first
        candidates, firsts = self._candidates, self._first_of_candidates
        mask = _MASK
        if _MAX_PROBES < 1:  # no slot may be probed: every row is a candidate
            candidates.extend(seqs)
            return
        for seq, h in zip(seqs, hashes, strict=True):
            slot, fp = h & mask, (h >> 32) | 1  # never 0, which marks an empty slot
            held = fps[slot]
            # The first probe inline (most rows find their slot empty): a probe loop per row
            # was a third of the finder's time.
            if held == 0:
                fps[slot], first[slot] = fp, seq
            elif held == fp:
                candidates.append(seq)
                firsts.add(first[slot])
            else:
                self._probe(seq, (slot + 1) & mask, fp)

    def _probe(self, seq: int, slot: int, fp: int) -> None:
        """The probes after the first (the first probe's slot held another fingerprint)."""
        fps, first = self._fingerprints, self._first
        for _ in range(_MAX_PROBES - 1):
            held = fps[slot]
            if held == 0:
                fps[slot], first[slot] = fp, seq
                return
            if held == fp:
                self._candidates.append(seq)
                self._first_of_candidates.add(first[slot])
                return
            slot = (slot + 1) & _MASK
        self._candidates.append(seq)

    def rows_to_check(self) -> set[int]:
        """The seqs whose rows must be compared exactly (empty when nothing can repeat)."""
        return self._first_of_candidates.union(self._candidates)
