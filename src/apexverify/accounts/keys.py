"""API keys: random, shown once, stored only as a SHA-256 hash.

A plain (unsalted) hash is enough because keys carry 256 bits of randomness: there is nothing
to brute-force, and a fixed hash lets authentication be a single indexed lookup.
"""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "apx_"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8", "surrogatepass")).hexdigest()


def display_prefix(plaintext: str) -> str:
    return plaintext[:10]
