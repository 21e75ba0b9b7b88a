"""Parsing a large upload as chunk jobs that any worker takes (scale-out mode).

``plan`` cuts the file into byte ranges at line ends (``ParseChunk`` rows) and enqueues one
job per range in the same transaction. ``load_range`` classifies its range and, in one
transaction, inserts the rows and marks the range done: a retried, doubled or stalled-and-
rerun job finds it done and inserts nothing. That transaction holds a share lock on the batch
row and checks the parse generation, so a PUT/PATCH (which updates that row) cannot interleave
with it: rows of a superseded parse never land after the new parse has cleared the batch.
When no range is left, ``finish`` finds the keys that occur more than once across the whole
batch (one aggregate query), resolves them exactly in file order as the one-job parse does,
applies the caches, prices and publishes (``parse_task.publish``, a compare-and-set, so a
second finisher changes nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from ..store import records
from ..store.models import Batch, ParseChunk, Record
from . import states
from .context import Services
from .params import BatchParameters
from .parse_task import Superseded, current_parse, parse_spec, publish
from .parsing import classified_chunks, line_ranges

log = logging.getLogger(__name__)

# Enqueues one chunk job in the caller's transaction: defer(session, **job_kwargs).
DeferChunk = Callable[..., Any]


def plan_if_large(
    services: Services, batch_uuid: str, generation: int, defer: DeferChunk
) -> bool | None:
    """None when the upload is small enough for the one-job parse; else ``plan``'s answer."""
    batch, _account = current_parse(services, batch_uuid, generation)
    path = services.storage.local_path(batch.file_path)
    if path.stat().st_size <= services.settings.parse_chunk_bytes:
        return None
    return plan(services, batch_uuid, generation, defer)


def _locked_batch(session: Session, batch_uuid: str, generation: int) -> Batch | None:
    """The batch if this parse generation is still current, with a share lock (PostgreSQL)
    held to the end of the caller's transaction."""
    batch = session.scalars(
        select(Batch).where(Batch.uuid == batch_uuid).with_for_update(read=True)
    ).one_or_none()
    if batch is None or batch.parse_generation != generation or batch.status != states.PARSING:
        return None
    return batch


def plan(services: Services, batch_uuid: str, generation: int, defer: DeferChunk) -> bool:
    """Split the upload into ranges and enqueue the jobs of those not done yet. Idempotent:
    a re-run (sweeper, restart) keeps the ranges already planned for this generation. True
    when every range is already done (the caller then finishes)."""
    with services.store.write() as session:
        batch = _locked_batch(session, batch_uuid, generation)
        if batch is None:
            return False
        chunks = _chunks(session, batch.pk, generation)
        if not chunks:
            records.delete_rows(session, batch.pk)
            session.execute(delete(ParseChunk).where(ParseChunk.batch_pk == batch.pk))
            block = services.settings.parse_chunk_bytes
            path = services.storage.local_path(batch.file_path)
            for start, end, first_seq in line_ranges(path, block):
                session.add(
                    ParseChunk(
                        batch_pk=batch.pk,
                        generation=generation,
                        first_seq=first_seq,
                        start_byte=start,
                        end_byte=end,
                    )
                )
            session.flush()
            chunks = _chunks(session, batch.pk, generation)
            log.info("parse of %s split into %d chunk jobs", batch_uuid, len(chunks))
        pending = [c for c in chunks if not c.done]
        for chunk in pending:
            defer(
                session,
                batch_uuid=batch_uuid,
                generation=generation,
                first_seq=chunk.first_seq,
                start=chunk.start_byte,
                end=chunk.end_byte,
            )
        return not pending


def _chunks(session: Session, batch_pk: int, generation: int) -> list[ParseChunk]:
    return list(
        session.scalars(
            select(ParseChunk)
            .where(ParseChunk.batch_pk == batch_pk, ParseChunk.generation == generation)
            .order_by(ParseChunk.first_seq)
        )
    )


def load_range(
    services: Services, batch_uuid: str, generation: int, first_seq: int, start: int, end: int
) -> bool:
    """Classify one range and load its rows; True when no range of this parse is left."""
    batch, _account = current_parse(services, batch_uuid, generation)
    params = BatchParameters.model_validate(batch.parameters)
    spec, path = parse_spec(services, params), services.storage.local_path(batch.file_path)
    with services.store.write() as session:
        locked = _locked_batch(session, batch_uuid, generation)
        if locked is None:
            raise Superseded()
        claimed = session.execute(
            update(ParseChunk)
            .where(
                ParseChunk.batch_pk == locked.pk,
                ParseChunk.generation == generation,
                ParseChunk.first_seq == first_seq,
                ParseChunk.done.is_(False),
            )
            .values(done=True)
        ).rowcount
        if claimed:
            # The worker's parse pool classifies sub-ranges on every core while this thread
            # loads the rows already classified; a failure rolls the claim back too.
            span = (start, end, first_seq)
            for rows in classified_chunks(spec, path, services.settings.parse_workers, span):
                records.insert_rows(session, locked.pk, rows)
    with services.store.read() as session:
        left = session.execute(
            select(ParseChunk.first_seq)
            .where(
                ParseChunk.batch_pk == batch.pk,
                ParseChunk.generation == generation,
                ParseChunk.done.is_(False),
            )
            .limit(1)
        ).first()
    return left is None


def finish(services: Services, batch_uuid: str, generation: int) -> None:
    """Batch-wide steps once every range is loaded: dedupe, caches, price, publish."""
    batch, account = current_parse(services, batch_uuid, generation)
    params = BatchParameters.model_validate(batch.parameters)
    counts = records.Counts()
    with services.store.read() as session:
        by_kind = dict(
            session.execute(
                select(Record.kind, func.count())
                .where(Record.batch_pk == batch.pk)
                .group_by(Record.kind)
            ).all()
        )
        counts.valid, counts.wrong = int(by_kind.get("valid", 0)), int(by_kind.get("wrong", 0))
        # Every row whose key occurs more than once: a superset of the repeats, resolved
        # exactly (file order, per kind) by ``publish`` as in the one-job parse.
        candidates = records.repeated_key_seqs(session, batch.pk)
    publish(services, batch, account, params, generation, candidates, counts)
    with services.store.write() as session:
        session.execute(delete(ParseChunk).where(ParseChunk.batch_pk == batch.pk))
