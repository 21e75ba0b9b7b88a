"""Column and header detection, delimiter sniffing and cell texts of table uploads."""

from __future__ import annotations

import datetime as dt

import pytest

from apexverify.batches.sources.cells import cell_text, clean_value
from apexverify.batches.sources.detect import Choice, choose, looks_like
from apexverify.batches.sources.sniff import separator_line, sniff_delimiter
from apexverify.errors import ParseError

EMAILS = [["Name", "Work E-mail"], ["Ann", "ann@example.com"], ["Ben", "ben@example.com"]]


@pytest.mark.parametrize(
    ("header", "record_type", "index"),
    [
        (["First Name", "Last Name", "Email", "Company"], "email", 2),
        (["Email Address", "First Name", "Phone Number"], "email", 0),
        (["Email Address", "First Name", "Phone Number"], "phone", 2),
        (["id", "email_address"], "email", 1),
        (["id", "E-Mail"], "email", 1),
        (["Name", "Mobile"], "phone", 1),
        (["Name", "Work E-mail"], "email", 1),  # contains "mail"
        (["Name", "Cell Phone", "Phone"], "phone", 2),  # an exact name first
    ],
)
def test_the_column_is_found_by_its_header_name(
    header: list[str], record_type: str, index: int
) -> None:
    assert choose([header, [""] * len(header)], "auto", "auto", record_type) == Choice(True, index)


def test_the_column_is_found_by_content_when_no_header_names_it() -> None:
    rows = [["Who", "Contact"], ["Ann", "ann@example.com"], ["Ben", "ben@example.com"]]
    assert choose(rows, "auto", "auto", "email") == Choice(True, 1)
    no_header = rows[1:]
    assert choose(no_header, "auto", "auto", "email") == Choice(False, 1)
    phones = [["Ann", "+1 (202) 555-0143"], ["Ben", "202.555.0188"]]
    assert choose(phones, "auto", "auto", "phone") == Choice(False, 1)


def test_header_modes_are_obeyed() -> None:
    rows = [["ann@example.com"], ["ben@example.com"]]
    assert choose(rows, "1", "auto", "email") == Choice(False, 0)
    assert choose(rows, "1", "true", "email") == Choice(True, 0)
    assert choose([["email"], *rows], "1", "auto", "email") == Choice(True, 0)
    assert choose([["email"], *rows], "1", "false", "email") == Choice(False, 0)
    assert choose(EMAILS, "auto", "false", "email") == Choice(False, 1)


def test_names_are_case_insensitive_and_trimmed() -> None:
    assert choose(EMAILS, " work e-mail ", "auto", "email") == Choice(True, 1)
    assert choose(EMAILS, "2", "auto", "email") == Choice(True, 1)


@pytest.mark.parametrize(
    ("column", "header", "message"),
    [
        ("Email", "auto", "No column named 'Email' (columns found: 'Name', 'Work E-mail')"),
        ("3", "auto", "Column 3 is out of range: the file has 2 columns"),
        ("0", "auto", "out of range"),
        ("Name", "false", "header=false"),
        ("¹", "auto", "No column named '¹'"),  # a digit to str.isdigit, not to int()
        ("٣", "auto", "No column named '٣'"),
    ],
)
def test_refusals_name_the_columns(column: str, header: str, message: str) -> None:
    with pytest.raises(ParseError) as refused:
        choose(EMAILS, column, header, "email")
    assert message in refused.value.message


def test_no_column_found() -> None:
    with pytest.raises(ParseError) as refused:
        choose([["a", "b"], ["c", "d"]], "auto", "auto", "phone")
    assert "No column looks like phone numbers" in refused.value.message


def test_what_looks_like_a_value() -> None:
    assert looks_like("email", " a.b+c@example.co.uk ")
    assert not looks_like("email", "Email")
    assert not looks_like("email", "a@b")
    assert looks_like("phone", "+44 20 7946 0958")
    assert looks_like("phone", "12025550143")
    assert not looks_like("phone", "Phone")
    assert not looks_like("phone", "12")
    assert not looks_like("phone", "2024-01-01 10:00:00x")


@pytest.mark.parametrize(
    ("sample", "delimiter"),
    [
        ("a,b,c\n1,2,3\n", ","),
        ("a;b;c\n1;2;3\n", ";"),
        ("a\tb\n1\t2\n", "\t"),
        ('name,note\n"x","a;b;c;d"\n"y","e;f;g;h"\n', ","),
        ('Name;City\nDupont;"Paris, 75001"\n', ";"),
        ("ann@example.com\nben@example.com\n", ","),  # one column
        ("a|b\n1|2\n", "|"),
    ],
)
def test_the_delimiter_is_sniffed(sample: str, delimiter: str) -> None:
    assert sniff_delimiter(sample) == delimiter


def test_excel_separator_line() -> None:
    assert separator_line("sep=;\r\nEmail;Name\r\n") == ";"
    assert separator_line("Email;Name\r\n") is None


def test_cell_texts() -> None:
    assert cell_text(12025550143.0) == "12025550143"
    assert cell_text(123) == "123"
    assert cell_text(2.5) == "2.5"
    assert cell_text(True) == "TRUE"
    assert cell_text(None) == ""
    assert cell_text(dt.date(2024, 1, 2)) == "2024-01-02"
    assert cell_text(dt.datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02T03:04:05"
    assert clean_value("  a@b.com\r\n") == "a@b.com"
    assert clean_value("two\nlines\x00") == "two lines"
