"""SQL over ``parse_chunks``: the byte ranges of a large upload parsed by separate jobs."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ...store.db import affected
from ...store.models import ParseChunk


def of_generation(session: Session, batch_pk: int, generation: int) -> list[ParseChunk]:
    return list(
        session.scalars(
            select(ParseChunk)
            .where(ParseChunk.batch_pk == batch_pk, ParseChunk.generation == generation)
            .order_by(ParseChunk.first_seq)
        )
    )


def replace_plan(
    session: Session, batch_pk: int, generation: int, ranges: list[tuple[int, int, int]]
) -> None:
    """Forget every earlier plan of the batch and store ``(start, end, first_seq)`` ranges."""
    session.execute(delete(ParseChunk).where(ParseChunk.batch_pk == batch_pk))
    session.add_all(
        ParseChunk(
            batch_pk=batch_pk,
            generation=generation,
            first_seq=first_seq,
            start_byte=start,
            end_byte=end,
        )
        for start, end, first_seq in ranges
    )
    session.flush()


def claim(session: Session, batch_pk: int, generation: int, first_seq: int) -> bool:
    """Mark one range done; False when it already was (a re-run job loads nothing)."""
    claimed = affected(
        session,
        update(ParseChunk)
        .where(
            ParseChunk.batch_pk == batch_pk,
            ParseChunk.generation == generation,
            ParseChunk.first_seq == first_seq,
            ParseChunk.done.is_(False),
        )
        .values(done=True),
    )
    return bool(claimed)


def any_left(session: Session, batch_pk: int, generation: int) -> bool:
    row = session.execute(
        select(ParseChunk.first_seq)
        .where(
            ParseChunk.batch_pk == batch_pk,
            ParseChunk.generation == generation,
            ParseChunk.done.is_(False),
        )
        .limit(1)
    ).first()
    return row is not None


def forget(session: Session, batch_pk: int) -> None:
    session.execute(delete(ParseChunk).where(ParseChunk.batch_pk == batch_pk))
