"""Spreadsheets as the growth team exports them (HubSpot, Mailchimp, Excel), each with the
number of addresses it holds: what the CLI and SDK tests upload."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import openpyxl

ADDRESSES = ["valid@example.com", "invalid@example.com", "unknown@example.org", "role@shop.io"]


def hubspot(path: Path) -> Path:
    """BOM, CRLF, every field quoted, the email third, a comma inside a company name."""
    rows = ['"First Name","Last Name","Email","Company"']
    rows += [f'"Jane","Doe {i}","{a}","Acme, Inc."' for i, a in enumerate(ADDRESSES)]
    path.write_bytes(("\ufeff" + "\r\n".join(rows) + "\r\n").encode())
    return path


def mailchimp(path: Path) -> Path:
    rows = ["Email Address,First Name,Last Name,MEMBER_RATING,OPTIN_TIME,TAGS"]
    rows += [
        f'{a},Jo,Smith,2,2024-01-0{i + 1} 10:00:00,"vip,newsletter"'
        for i, a in enumerate(ADDRESSES)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def bom_crlf_list(path: Path) -> Path:
    """A one-column list whose first line is the header ``email``."""
    path.write_bytes(("\ufeffemail\r\n" + "\r\n".join(ADDRESSES) + "\r\n").encode())
    return path


def semicolon(path: Path) -> Path:
    rows = ["Name;E-Mail;City"] + [f"P {i};{a};Paris" for i, a in enumerate(ADDRESSES)]
    path.write_text("\n".join(rows) + "\n")
    return path


def xlsx(path: Path) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Name", "Email", "Score"])
    for i, address in enumerate(ADDRESSES):
        sheet.append([f"Person {i}", address, i * 10])
    book.save(path)
    return path


# name -> (file name, writer, the email column's header)
TABLES: dict[str, tuple[str, Callable[[Path], Path], str]] = {
    "hubspot": ("hubspot.csv", hubspot, "Email"),
    "mailchimp": ("mailchimp.csv", mailchimp, "Email Address"),
    "bom_crlf": ("list.csv", bom_crlf_list, "email"),
    "semicolon": ("contacts.csv", semicolon, "E-Mail"),
    "xlsx": ("contacts.xlsx", xlsx, "Email"),
}
