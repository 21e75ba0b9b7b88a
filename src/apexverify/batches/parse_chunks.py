"""Parsing a large upload as chunk jobs that any worker takes (scale-out mode).

``plan`` cuts the file into byte ranges at line ends (``ParseChunk`` rows) and enqueues one
job per range in the same transaction. ``load_range`` classifies its range and, in one
transaction, inserts the rows and marks the range done: a retried, doubled or stalled-and-
rerun job finds it done and inserts nothing. That transaction holds a share lock on the batch
row and checks the parse generation, so a PUT/PATCH (which updates that row) cannot interleave
with it: rows of a superseded parse never land after the new parse has cleared the batch.
When no range is left, ``finish`` finds the keys that occur more than once across the whole
batch (one aggregate query), resolves them exactly in file order as the one-job parse does,
applies the caches, prices and publishes (``parse.publish``, a compare-and-set, so a second
finisher changes nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.orm import Session

from ..store.models import Batch, RecordKind
from . import policy, states
from .context import Services
from .parse import Superseded, current_parse, parse_spec, publish
from .parsing import classified_blocks, line_ranges
from .repository import batches as batch_rows
from .repository import chunks, records, row_load

log = logging.getLogger(__name__)

# Enqueues one chunk job in the caller's transaction: defer(session, first_seq=, start=, end=).
DeferChunk = Callable[..., None]


def is_large(services: Services, batch: Batch) -> bool:
    size = services.storage.local_path(batch.file_path).stat().st_size
    return size > services.settings.parse_chunk_bytes


def _locked_batch(session: Session, batch_uuid: str, generation: int) -> Batch | None:
    """The batch if this parse generation is still current, share-locked (PostgreSQL) to the
    end of the caller's transaction."""
    batch = batch_rows.by_uuid(session, batch_uuid, share_lock=True)
    if batch is None or batch.parse_generation != generation or batch.status != states.PARSING:
        return None
    return batch


def plan(services: Services, batch_uuid: str, generation: int, defer: DeferChunk) -> bool:
    """Split the upload into ranges and enqueue the jobs of those not done yet. Idempotent:
    a re-run (sweep, restart) keeps the ranges already planned for this generation. True
    when every range is already done (the caller then finishes)."""
    with services.store.write() as session:
        batch = _locked_batch(session, batch_uuid, generation)
        if batch is None:
            raise Superseded()
        planned = chunks.of_generation(session, batch.pk, generation)
        if not planned:
            records.delete_rows(session, batch.pk)
            path = services.storage.local_path(batch.file_path)
            ranges = list(line_ranges(path, services.settings.parse_chunk_bytes))
            chunks.replace_plan(session, batch.pk, generation, ranges)
            planned = chunks.of_generation(session, batch.pk, generation)
            log.info("parse of %s split into %d chunk jobs", batch_uuid, len(planned))
        pending = [c for c in planned if not c.done]
        for chunk in pending:
            defer(session, first_seq=chunk.first_seq, start=chunk.start_byte, end=chunk.end_byte)
        return not pending


def load_range(
    services: Services, batch_uuid: str, generation: int, first_seq: int, start: int, end: int
) -> bool:
    """Classify one range and load its rows; True when no range of this parse is left."""
    batch, _account, params = current_parse(services, batch_uuid, generation)
    spec, path = parse_spec(services, params), services.storage.local_path(batch.file_path)
    with services.store.write() as session:
        locked = _locked_batch(session, batch_uuid, generation)
        if locked is None:
            raise Superseded()
        if chunks.claim(session, locked.pk, generation, first_seq):
            # The worker's parse pool classifies sub-ranges on every core while this thread
            # loads the rows already classified; a failure rolls the claim back too.
            span = (start, end, first_seq)
            for block in classified_blocks(spec, path, services.settings.parse_workers, span):
                row_load.load_block(session, locked.pk, block)
    with services.store.read() as session:
        return not chunks.any_left(session, batch.pk, generation)


def finish(services: Services, batch_uuid: str, generation: int) -> None:
    """Batch-wide steps once every range is loaded: dedupe, caches, price, publish."""
    batch, account, params = current_parse(services, batch_uuid, generation)
    with services.store.write() as session:
        by_kind = records.kind_counts(session, batch.pk)
        counts = policy.Counts(
            valid=by_kind.get(RecordKind.VALID, 0), wrong=by_kind.get(RecordKind.WRONG, 0)
        )
        # Every row whose key occurs more than once: a superset of the repeats, resolved
        # exactly (file order, per kind) by ``publish`` as in the one-job parse.
        candidates = records.repeated_key_seqs(session, batch.pk)
        publish(services, session, batch, account, params, generation, candidates, counts)
        chunks.forget(session, batch.pk)
