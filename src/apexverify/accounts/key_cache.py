"""A short-lived, in-process memory of API keys seen active: key hash -> grant.

The status endpoint is polled (clients and dashboards ask every second or faster), and looking
its key up by hash in the database cost as much as answering it. A hit here answers from
memory; a miss asks the database (:func:`apexverify.accounts.service.find_key`) and remembers
an active key for :data:`TTL_SECONDS`.

What is remembered never changes for a key: its id, its account and its kind. What does
change, revocation, is not trusted to memory: the one user, ``api/status_fast_path.py``,
reads the batch row joined to the key's row and its ``revoked_at``
(``batches.repository.batches.row_for_active_key``), so a key revoked in any process (a
second ``serve --workers`` process, the ``apexverify key revoke`` command) stops opening the
status endpoints with the next request, TTL or not. :func:`~apexverify.accounts.service.
revoke_key` also empties this cache, at once and again when its transaction commits. Every
other endpoint authorizes against the database on each request, as before.

Unknown, revoked and mistyped keys are never remembered: a miss always asks the database, so
a key created a moment ago works at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .keys import hash_key

# A key polled at 1,000 requests/s costs one look-up by hash every ten seconds. Revocation
# does not wait for it (above); it bounds how long a key no longer used stays in memory.
TTL_SECONDS = 10.0
# A bound on memory for a server with many active keys: past it the cache starts over.
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class KeyGrant:
    """What an active key is: whose, which one, and of which kind (``KeyKind``'s value)."""

    account_id: str
    key_id: str
    kind: str


class KeyCache:
    def __init__(
        self,
        ttl: float = TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, KeyGrant]] = {}
        self._guard = threading.Lock()
        # Bumped by every clear(): a look-up that began before a revocation and ends after it
        # must not put back what the revocation removed.
        self._generation = 0

    def generation(self) -> int:
        return self._generation

    def get(self, plaintext: str) -> KeyGrant | None:
        digest = hash_key(plaintext)
        entry = self._entries.get(digest)
        if entry is None:
            return None
        expires, grant = entry
        if self.clock() >= expires:
            with self._guard:
                self._entries.pop(digest, None)
            return None
        return grant

    def put(self, plaintext: str, grant: KeyGrant, generation: int) -> None:
        """Remember ``grant`` unless the cache was cleared since ``generation`` was read."""
        with self._guard:
            if generation != self._generation:
                return
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[hash_key(plaintext)] = (self.clock() + self.ttl, grant)

    def clear(self) -> None:
        with self._guard:
            self._generation += 1
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


# The process's one cache: revocations reach it without a handle on the running app.
active_keys = KeyCache()
