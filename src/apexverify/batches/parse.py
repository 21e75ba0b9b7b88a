"""The parse: file -> records -> dedupe -> caches -> price -> ready_for_verification.

A parse publishes its figures only if its generation is still the batch's current one, so a
PUT during a parse can never leave a cost computed for old parameters. Rows are loaded in
short transactions as they are classified; a parse interrupted by a crash is redone from
the start (the batches sweep re-defers it).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor

from sqlalchemy.orm import Session

from ..store.models import Account, Batch
from ..webhooks.events import EventType
from . import policy, states
from .context import Services
from .dedupe import DuplicateFinder
from .params import BatchParameters
from .parsing import ClassifiedBlock, ParseSpec, classified_blocks
from .repository import batches as batch_rows
from .repository import caches, records, repeats, row_load
from .verification import notify_webhooks

log = logging.getLogger(__name__)
_FLUSH_ROWS = 100_000


class Superseded(Exception):
    """A newer PUT/PATCH started another parse (or the batch is gone); this one stops."""


def current_parse(
    services: Services, batch_uuid: str, generation: int
) -> tuple[Batch, Account, BatchParameters]:
    with services.store.read() as session:
        batch = batch_rows.by_uuid(session, batch_uuid)
        if batch is None or batch.parse_generation != generation or batch.status != states.PARSING:
            raise Superseded()
        return (
            batch,
            batch_rows.owner(session, batch),
            BatchParameters.model_validate(batch.parameters),
        )


def parse_spec(services: Services, params: BatchParameters) -> ParseSpec:
    return ParseSpec(
        record_type=params.type,
        target_country=params.target_country,
        keep_wrong=not params.remove_wrong(),
        secret=services.secret,
    )


def parse_whole(services: Services, batch_uuid: str, generation: int) -> None:
    batch, account, params = current_parse(services, batch_uuid, generation)
    spec = parse_spec(services, params)
    with services.store.write() as session:
        records.delete_rows(session, batch.pk)
    started = time.perf_counter()
    finder = DuplicateFinder()
    counts = policy.Counts()
    pending: list[ClassifiedBlock] = []
    pending_rows = 0
    path = services.storage.local_path(batch.file_path)
    # One flush at a time runs on a loader thread while this one takes the next blocks and
    # feeds the duplicate finder: SQLite releases the GIL while it inserts, so its share of
    # the load overlaps the finder and the unpickling of the pool's results.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="parse-load") as loader:
        loading: Future[None] | None = None
        for block in classified_blocks(spec, path, services.settings.parse_workers):
            finder.see_block(block.seqs, block.keys)
            counts.wrong += block.wrong_count
            counts.valid += len(block) - block.wrong_count
            pending.append(block)
            pending_rows += len(block)
            if pending_rows >= _FLUSH_ROWS:
                if loading is not None:
                    loading.result()  # a failed or superseded flush stops the parse here
                loading = loader.submit(_flush, services, batch_uuid, generation, batch.pk, pending)
                pending, pending_rows = [], 0
        if loading is not None:
            loading.result()
    _flush(services, batch_uuid, generation, batch.pk, pending)
    loaded = time.perf_counter()
    with services.store.write() as session:
        publish(
            services, session, batch, account, params, generation, finder.rows_to_check(), counts
        )
    log.info(
        "parsed %s: load %.2fs, dedupe/cache/price %.2fs",
        batch_uuid,
        loaded - started,
        time.perf_counter() - loaded,
    )


def _flush(
    services: Services,
    batch_uuid: str,
    generation: int,
    batch_pk: int,
    blocks: list[ClassifiedBlock],
) -> None:
    current_parse(services, batch_uuid, generation)  # stop early when superseded
    if blocks:
        with services.store.write() as session:
            for block in blocks:
                row_load.load_block(session, batch_pk, block)


def publish(
    services: Services,
    session: Session,
    batch: Batch,
    account: Account,
    params: BatchParameters,
    generation: int,
    candidates: set[int],
    counts: policy.Counts,
) -> None:
    """Batch-wide steps once every row is loaded: dedupe, caches, price, and the move to
    ``ready_for_verification`` (a compare-and-set on the generation: a second finisher or a
    superseded parse changes nothing)."""
    counts.duplicate = repeats.resolve(
        session, batch.pk, candidates, keep_duplicates=not params.remove_duplicate
    )
    counts.valid -= counts.duplicate
    for read in policy.cache_policy(account, params).reads:
        hits = caches.apply(
            session, batch.pk, params.type, read.scope, read.max_age_days, read.source
        )
        if read.source == "account":
            counts.cache_account = hits
        else:
            counts.cache_global = hits
    price = policy.price_batch(services.settings, params.type, counts)
    try:
        states.transition(
            session,
            batch,
            states.PARSING,
            states.READY,
            generation=generation,
            valid_count=counts.valid,
            wrong_count=counts.wrong,
            duplicate_count=counts.duplicate,
            cache_account_count=counts.cache_account,
            cache_global_count=counts.cache_global,
            total_cost_milli=price.total_milli,
            net_cost_milli=price.net_milli,
            to_verify=counts.valid - counts.cache_account - counts.cache_global,
            verified=0,
        )
    except states.TransitionLost:
        raise Superseded() from None
    notify_webhooks(session, services.queue, batch, EventType.READY)


def fail_parse(services: Services, batch_uuid: str, generation: int, reason: str) -> None:
    """End the current parse in ``internal_error`` (nothing was charged before launch)."""
    with services.store.write() as session:
        batch = batch_rows.by_uuid(session, batch_uuid)
        if batch is None:
            return
        try:
            states.transition(
                session,
                batch,
                states.PARSING,
                states.ERROR,
                generation=generation,
                error_message=f"Parsing failed ({reason}). Re-trigger parsing with PATCH or "
                "contact support with the batch_uuid.",
            )
        except states.TransitionLost:
            log.info("parse of %s generation %d already superseded", batch_uuid, generation)
            return
        notify_webhooks(session, services.queue, batch, EventType.ERROR)
