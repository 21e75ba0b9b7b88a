"""Classification and constant-memory duplicate detection."""

from __future__ import annotations

from pathlib import Path

from apexverify.batches import dedupe
from apexverify.batches.dedupe import DuplicateFinder
from apexverify.batches.parsing import ParseSpec, classify, iter_chunks

SECRET = b"s" * 32


def test_iter_chunks_skips_blank_lines_and_keeps_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text(" a@b.com \n\n\t\nc@d.com\r\n")
    chunks = list(iter_chunks(path, size=1))
    assert chunks == [[(0, "a@b.com")], [(3, "c@d.com")]]


def test_classify_emails_normalizes_domain_and_flags_wrong() -> None:
    spec = ParseSpec("email", "US", keep_wrong=True, secret=SECRET)
    rows = classify(spec, [(0, "Alice@Example.COM"), (1, "alice@example.com"), (2, "nope")])
    assert rows[0][2] == "Alice@example.com"  # local part kept, domain lower-cased
    assert rows[1][2] is None  # already canonical: stored once
    assert rows[0][3] == rows[1][3]  # duplicates compare case-insensitively
    assert rows[2][4] == "wrong"
    assert rows[2][5] is True  # kept because keep_wrong


def test_classify_phones_uses_target_country() -> None:
    spec = ParseSpec("phone", "SG", keep_wrong=False, secret=SECRET)
    rows = classify(spec, [(0, "9123 4567"), (1, "+65 9123 4567"), (2, "12")])
    assert rows[0][2] == "+6591234567"
    assert rows[0][3] == rows[1][3]
    assert rows[2][4] == "wrong"
    assert rows[2][5] is False


def test_duplicate_finder_flags_repeats() -> None:
    finder = DuplicateFinder()
    finder.see([b"a" * 16, b"b" * 16, b"a" * 16])
    assert finder.candidates == {b"a" * 16}


def test_bitmap_collisions_only_make_candidates(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(dedupe, "_MASK", 0)  # every key lands on the same bit
    finder = DuplicateFinder()
    keys = [bytes([i]) * 16 for i in range(5)]
    finder.see(keys)
    assert finder.candidates == set(keys[1:])  # resolved exactly in SQL afterwards
