"""Classification and constant-memory duplicate detection."""

from __future__ import annotations

from pathlib import Path

from apexverify.batches import dedupe
from apexverify.batches.dedupe import DuplicateFinder
from apexverify.batches.parsing import (
    ParseSpec,
    classified_chunks,
    classify,
    iter_chunks,
    line_ranges,
    read_range,
)

SECRET = b"s" * 32


def test_iter_chunks_skips_blank_lines_and_keeps_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b" a@b.com \n\n\t\nc@d.com\r\n")
    assert list(iter_chunks(path)) == [[(0, "a@b.com"), (3, "c@d.com")]]


def test_line_ranges_cut_at_line_ends_and_number_lines(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    lines = [f"user{i}@example.com" for i in range(1000)]
    path.write_text("\n".join(lines))  # no final newline
    ranges = list(line_ranges(path, block=100))
    rows = [row for r in ranges for row in read_range(path, *r)]
    assert rows == list(enumerate(lines))
    assert all(path.read_bytes()[end - 1 : end] == b"\n" for _, end, _ in ranges[:-1])


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


def test_duplicate_finder_flags_repeats_and_their_first_rows() -> None:
    finder = DuplicateFinder()
    finder.see([(0, b"a" * 16), (1, b"b" * 16), (2, b"a" * 16), (3, b"a" * 16)])
    assert finder.rows_to_check() == {0, 2, 3}


def test_slot_collisions_only_make_candidates(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(dedupe, "_MAX_PROBES", 0)  # a full table: every row is a candidate
    finder = DuplicateFinder()
    finder.see((i, bytes([i]) * 16) for i in range(5))
    assert finder.rows_to_check() == {0, 1, 2, 3, 4}  # resolved exactly in SQL afterwards


def test_shared_fingerprints_only_add_rows_to_check(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(dedupe, "_MASK", 1)  # two slots; even first bytes start at slot 0
    finder = DuplicateFinder()
    same_fp = [b"\x00" * 4 + b"\x07" * 12, b"\x02" * 4 + b"\x07" * 12]  # equal bytes 4-7
    finder.see([(0, same_fp[0]), (1, same_fp[1]), (2, b"z" * 16)])
    assert finder.rows_to_check() == {0, 1}


def test_classified_spans_equal_the_whole_file(tmp_path: Path) -> None:
    """Chunk jobs classify spans of the file (in the process pool when a span is large):
    together they give exactly the rows of the whole-file parse, numbered the same."""
    path = tmp_path / "f.txt"
    lines = [f"user{i}@example{i % 7}.com" if i % 13 else f"bad{i}@" for i in range(120_000)]
    path.write_text("\n".join(lines) + "\n")
    spec = ParseSpec("email", "US", keep_wrong=True, secret=SECRET)
    whole = [row for part in classified_chunks(spec, path, 2) for row in part]
    spans = list(line_ranges(path, block=1_200_000))  # > POOL_THRESHOLD_BYTES each
    assert len(spans) >= 2
    by_span = [
        row for span in spans for part in classified_chunks(spec, path, 2, span) for row in part
    ]
    assert by_span == whole
    assert [row[0] for row in whole] == list(range(len(lines)))
