"""Email syntax: normalization used at parse time and by the engine.

``normalize_email`` returns the canonical form (local part as written, NFC-normalized when it
is not ASCII; domain lower-cased and IDNA 2008 A-label encoded) or ``None`` when the address is
not acceptable. What is accepted (see also docs/results.md, "Syntax"):

* local part: RFC 5322 dot-atom (``atext`` runs separated by single dots), at most 64 octets;
  RFC 6531 internationalized local parts (UTF-8 non-ASCII characters count as ``atext``).
  Quoted local parts (``"john doe"@x.com``) and comments are rejected: real mailboxes almost
  never use them and many MTAs refuse them.
* domain: at least two labels (no dotless domains), LDH labels of 1-63 octets, a TLD that
  starts with a letter (or an ``xn--`` A-label), at most 253 octets once encoded; U-labels are
  converted with the ``idna`` package (IDNA 2008 + UTS 46 mapping). IP literals
  (``user@[192.0.2.1]``) are rejected. Special-use TLDs (RFC 6761/6762/7686/8375/9476 and
  ICANN's ``internal``) are rejected: they can never receive internet mail.
* whole address at most 254 octets (RFC 5321 path limit minus the angle brackets).

The batch parser calls this on millions of rows, so plain ASCII input goes through one
compiled regex plus a set look-up; only non-ASCII or ``xn--`` input pays for ``idna``.
"""

from __future__ import annotations

import re
import unicodedata

import idna

_ATEXT = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOMAIN = (
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?"
)
_ASCII_EMAIL = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*@{_DOMAIN}", re.IGNORECASE)
_ASCII_DOMAIN = re.compile(_DOMAIN, re.IGNORECASE)
_ASCII_LOCAL = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*", re.IGNORECASE)

# TLDs that are reserved for special use and never deliver internet mail.
SPECIAL_USE_TLDS = frozenset(
    {
        "localhost",  # RFC 6761
        "invalid",  # RFC 6761
        "test",  # RFC 6761
        "example",  # RFC 6761
        "local",  # RFC 6762 (mDNS)
        "onion",  # RFC 7686
        "alt",  # RFC 9476
        "internal",  # ICANN private-use TLD (2024)
        "arpa",  # infrastructure only (in-addr.arpa, home.arpa RFC 8375)
    }
)

# ASCII characters that may never appear in an unquoted local part, even an internationalized
# one (RFC 5322 "specials" plus space); non-ASCII characters are checked by Unicode category.
_LOCAL_FORBIDDEN = frozenset(' "(),:;<>@[\\]')


def normalize_email(raw: str) -> str | None:
    """Canonical form of ``raw`` or ``None`` if it is not a valid address."""
    raw = raw.strip()
    if len(raw) <= 254 and raw.isascii() and _ASCII_EMAIL.fullmatch(raw):
        local, _, domain = raw.rpartition("@")
        domain = domain.lower()
        if len(local) > 64 or len(domain) > 253:
            return None
        if domain.rpartition(".")[2] in SPECIAL_USE_TLDS:
            return None
        if "xn--" in domain and _idna_domain(domain) != domain:
            # A-labels must decode to valid IDNA 2008 U-labels (and round-trip).
            return None
        return f"{local}@{domain}"
    return _normalize_slow(raw)


def _idna_domain(domain: str) -> str | None:
    """Lower-case A-label form of ``domain`` or ``None`` when IDNA 2008 refuses it."""
    try:
        encoded = idna.encode(domain, uts46=True).decode("ascii").lower()
        if "xn--" in encoded:
            # ``encode`` passes A-labels through; decoding checks they are real IDNA 2008.
            idna.decode(encoded)
    except (idna.IDNAError, UnicodeError, ValueError):
        return None
    if not _ASCII_DOMAIN.fullmatch(encoded) or len(encoded) > 253:
        return None
    if encoded.rpartition(".")[2] in SPECIAL_USE_TLDS:
        return None
    return encoded


def _normalize_slow(raw: str) -> str | None:
    """Non-ASCII input: internationalized local part and/or U-label domain."""
    local, sep, domain = raw.rpartition("@")
    if not sep or not local or not domain:
        return None
    local = unicodedata.normalize("NFC", local)
    if not _valid_local(local):
        return None
    ascii_domain = _idna_domain(domain)
    if ascii_domain is None:
        return None
    address = f"{local}@{ascii_domain}"
    if len(address.encode("utf-8")) > 254:
        return None
    return address


def _valid_local(local: str) -> bool:
    if len(local.encode("utf-8")) > 64:
        return False
    if local.isascii():
        return _ASCII_LOCAL.fullmatch(local) is not None
    for atom in local.split("."):
        if not atom:  # leading, trailing or doubled dot
            return False
        for char in atom:
            if char.isascii():
                if char in _LOCAL_FORBIDDEN or not char.isprintable():
                    return False
            elif unicodedata.category(char)[0] in "CZ":
                # Controls, format characters, separators: invisible or spacing characters
                # that no mailbox name legitimately uses (RFC 6532 section 3.1).
                return False
    return True
