"""The parse task: file -> records -> dedupe -> caches -> price -> ready_for_verification.

A parse publishes its figures only if its generation is still the batch's current one, so a
PUT during a parse can never leave a cost computed for old parameters. Chunks are committed as
they go; a parse interrupted by a crash is simply redone from the start by ``resume_all``.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import update

from ..store import records
from ..store.models import Account, Batch, utcnow
from . import states
from .context import Services
from .dedupe import DuplicateFinder
from .params import BatchParameters
from .parsing import ParseSpec, classified_chunks
from .pricing import price_batch

log = logging.getLogger(__name__)


class Superseded(Exception):
    """A newer PUT/PATCH started another parse; this one stops quietly."""


async def parse_batch(services: Services, batch_uuid: str, generation: int) -> None:
    try:
        await asyncio.to_thread(parse_whole, services, batch_uuid, generation)
    except Superseded:
        log.info("parse of %s generation %d superseded", batch_uuid, generation)
    except Exception as exc:
        log.exception("parse of %s failed", batch_uuid)
        fail_parse(services, batch_uuid, generation, exc)


def current_parse(services: Services, batch_uuid: str, generation: int) -> tuple[Batch, Account]:
    with services.store.read() as session:
        batch = session.query(Batch).filter(Batch.uuid == batch_uuid).one_or_none()
        if (
            batch is None
            or batch.parse_generation != generation
            or (batch.status != states.PARSING)
        ):
            raise Superseded()
        account = session.get(Account, batch.account_id)
        assert account is not None
        return batch, account


def parse_spec(services: Services, params: BatchParameters) -> ParseSpec:
    return ParseSpec(
        record_type=params.type,
        target_country=params.target_country,
        keep_wrong=not params.remove_wrong(),
        secret=services.secret,
    )


def parse_whole(services: Services, batch_uuid: str, generation: int) -> None:
    batch, account = current_parse(services, batch_uuid, generation)
    params = BatchParameters.model_validate(batch.parameters)
    spec = parse_spec(services, params)
    with services.store.write() as session:
        records.delete_rows(session, batch.pk)
    started = time.perf_counter()
    finder = DuplicateFinder()
    counts = records.Counts()
    pending: list[tuple] = []
    path = services.storage.local_path(batch.file_path)
    for rows in classified_chunks(spec, path, services.settings.parse_workers):
        finder.see((row[0], row[3]) for row in rows)
        wrong = sum(1 for row in rows if row[4] == "wrong")
        counts.wrong += wrong
        counts.valid += len(rows) - wrong
        pending.extend(rows)
        if len(pending) >= 200_000:
            _flush(services, batch_uuid, generation, batch.pk, pending)
            pending = []
    _flush(services, batch_uuid, generation, batch.pk, pending)
    loaded = time.perf_counter()
    publish(services, batch, account, params, generation, finder.rows_to_check(), counts)
    log.info(
        "parsed %s: load %.2fs, dedupe/cache/price %.2fs",
        batch_uuid,
        loaded - started,
        time.perf_counter() - loaded,
    )


def _flush(
    services: Services, batch_uuid: str, generation: int, batch_pk: int, rows: list[tuple]
) -> None:
    current_parse(services, batch_uuid, generation)  # stop early when superseded
    if rows:
        with services.store.write() as session:
            records.insert_rows(session, batch_pk, rows)


def publish(
    services: Services,
    batch: Batch,
    account: Account,
    params: BatchParameters,
    generation: int,
    candidates: set[int],
    counts: records.Counts,
) -> None:
    with services.store.write() as session:
        counts.duplicate = records.resolve_repeats(
            session, batch.pk, candidates, keep_duplicates=not params.remove_duplicate
        )
        counts.valid -= counts.duplicate
        if params.use_account_cache:
            counts.cache_account = records.apply_cache(
                session,
                batch.pk,
                params.type,
                account.id,
                params.max_account_cache_backoff,
                "account",
            )
        # Sandbox accounts neither read nor feed the global cache: their verdicts are fake.
        if params.use_global_cache and not account.sandbox:
            counts.cache_global = records.apply_cache(
                session,
                batch.pk,
                params.type,
                records.GLOBAL_SCOPE,
                params.max_global_cache_backoff,
                "global",
            )
        price = price_batch(services.settings, params.type, counts)
        published = session.execute(
            update(Batch)
            .where(
                Batch.pk == batch.pk,
                Batch.parse_generation == generation,
                Batch.status == states.PARSING,
            )
            .values(
                status=states.READY,
                valid_count=counts.valid,
                wrong_count=counts.wrong,
                duplicate_count=counts.duplicate,
                cache_account_count=counts.cache_account,
                cache_global_count=counts.cache_global,
                total_cost_milli=price.total_milli,
                net_cost_milli=price.net_milli,
                to_verify=counts.valid - counts.cache_account - counts.cache_global,
                verified=0,
                updated_at=utcnow(),
            )
        ).rowcount
        if not published:
            raise Superseded()


def fail_parse(services: Services, batch_uuid: str, generation: int, exc: Exception) -> None:
    with services.store.write() as session:
        session.execute(
            update(Batch)
            .where(
                Batch.uuid == batch_uuid,
                Batch.parse_generation == generation,
                Batch.status == states.PARSING,
            )
            .values(
                status=states.ERROR,
                error_message=f"Parsing failed ({type(exc).__name__}). Re-trigger parsing "
                "with PATCH or contact support with the batch_uuid.",
                updated_at=utcnow(),
            )
        )
