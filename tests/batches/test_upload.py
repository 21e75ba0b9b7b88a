"""The streaming upload validator, fed in awkward chunk sizes."""

from __future__ import annotations

import pytest

from apexverify.batches.upload import MAX_LINE_BYTES, UploadValidator
from apexverify.errors import ParseError, PayloadTooLarge


def feed(data: bytes, chunk: int, record_type: str = "email", limit: int = 10**9) -> int:
    validator = UploadValidator(record_type, limit)
    for i in range(0, len(data), chunk):
        validator.feed(data[i : i + chunk])
    validator.finish()
    return validator.size


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1024])
def test_good_file_in_any_chunking(chunk: int) -> None:
    data = "alice@example.com\r\n  bob@exämple.org \n\n+65 9123 4567\n".encode()
    assert feed(data, chunk) == len(data)


@pytest.mark.parametrize("chunk", [1, 5, 4096])
def test_multibyte_character_split_across_chunks(chunk: int) -> None:
    data = ("jörg@example.com\n" * 50).encode()
    assert feed(data, chunk) == len(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\xef\xbb\xbfa@b.com\n",
        b"\xff\xfea\x00",
        b"a@b.com\x00",
        b"\xe9t\xe9@x.com\n",
        b"email\nalice@example.com\n",
        b"Phone Number\n+6591234567\n",
        b"a@b.com,x\n",
        b"",
        b" \n\n",
        b"caf\xc3",
    ],
)
def test_rejected(data: bytes) -> None:
    for chunk in (1, 3, 1024):
        with pytest.raises(ParseError):
            feed(data, chunk)


@pytest.mark.parametrize("chunk", [1000, 4096, 65536])
def test_line_length_limit_across_chunks(chunk: int) -> None:
    ok = b"1" * MAX_LINE_BYTES + b"\n" + b"b@c.com\n"
    feed(ok, chunk)
    with pytest.raises(ParseError):
        feed(b"x@y.com\n" + b"a" * (MAX_LINE_BYTES + 1) + b"\n", chunk)


def test_a_first_line_that_is_an_entry_is_no_header() -> None:
    feed(b"+6591234567\n", 4, "phone")
    feed(b"alice@example.com\n", 4)


def test_size_limit() -> None:
    with pytest.raises(PayloadTooLarge):
        feed(b"a@b.com\n" * 100, 64, limit=500)
