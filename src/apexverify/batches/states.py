"""The batch lifecycle. Allowed transitions are data, checked in one place.

(upload) -> parsing_content -> ready_for_verification -> verification_ongoing
                  ^   |  \\                 |                    |
                  |   v   -> internal_error  |                    v
                  +---+--------<-------------+           verification_done
             PUT / PATCH re-parse (until launch)
"""

from __future__ import annotations

PARSING = "parsing_content"
READY = "ready_for_verification"
ONGOING = "verification_ongoing"
DONE = "verification_done"
ERROR = "internal_error"

STATUSES = (PARSING, READY, ONGOING, DONE, ERROR)
LAUNCHED = frozenset({ONGOING, DONE})
# States from which PUT/PATCH may start a new parse.
REPARSABLE = frozenset({PARSING, READY, ERROR})
# States in which DELETE is refused because work is running.
BUSY = frozenset({PARSING, ONGOING})
