"""Keyed hashes of normalized values: the dedupe key and the cache key.

The global cache stores only this hash, so it holds no address or number; the key (the
server's secret) keeps the hash from being reversed by hashing a list of candidate values.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from pathlib import Path


def value_key(secret: bytes, normalized: str) -> bytes:
    return hashlib.blake2b(normalized.lower().encode(), key=secret, digest_size=16).digest()


def value_keyer(secret: bytes) -> Callable[[str], bytes]:
    """:func:`value_key` for one secret, called per row of a parse: the keyed state is set up
    once and copied (setting up a keyed BLAKE2b was a third of the hash's cost, measured).
    The digests are the same as :func:`value_key`'s."""
    keyed = hashlib.blake2b(key=secret, digest_size=16)
    copy = keyed.copy

    def key(normalized: str) -> bytes:
        state = copy()
        state.update(normalized.lower().encode())
        return state.digest()

    return key


def load_secret(configured: str, data_dir: Path) -> bytes:
    """The configured secret, else one generated once and kept in ``data_dir``."""
    if configured:
        return hashlib.sha256(configured.encode()).digest()[:32]
    path = data_dir / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(secrets.token_hex(32))
        tmp.replace(path)
    return bytes.fromhex(path.read_text().strip())
