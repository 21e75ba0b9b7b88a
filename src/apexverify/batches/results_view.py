"""The results table of one batch: a page of its verified rows, filtered and searched, for the
dashboard (``dashboard/results_pages.py`` translates HTTP; the SQL is in
``repository/results_table.py``).

Paging is by keyset over the file order (``seq``), never by offset, and every page examines a
bounded range of seqs (:data:`SCAN_ROWS`): on a 1,000,000-row batch a filter that matches
nothing costs what one that matches everything costs (``bench/results_table.py``). When the cap
stops a page short, the page says up to which row it looked and links on from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.orm import Session

from ..errors import BadRequest
from ..export.decisions import DECISIONS, decision, verdict_of
from ..export.filters import FLAGS, ResultFilter
from ..store.models import Batch
from . import states
from .repository import records, results_table
from .service import get_batch

PAGE_SIZES: Final = (50, 100)
# Seqs one page examines at most. Measured on a 1M-row batch (docs/benchmarks.md): a search
# that matches nothing over 100,000 seqs took 0.4 s on a busy 2-core machine; 50,000 keeps a
# page under the 300 ms budget, and "search the next rows" goes on from there.
SCAN_ROWS: Final = 50_000
VERDICTS: Final = ("valid", "wrong", "unknown")
QUALITIES: Final = ("good", "risky", "bad", "unknown")
SEARCH_MAX: Final = 200
# Decision counts of a finished batch never change: computed once per process (one grouped
# scan), keyed by the batch and its finish time so a re-used pk never reads stale figures.
_COUNTS: dict[tuple[int, str, str], dict[str, int]] = {}
_COUNTS_MAX: Final = 256


class NotVerified(BadRequest):
    default_message = "The results table is available once the batch has been launched."


@dataclass(frozen=True)
class Row:
    seq: int
    value: str
    decision: str | None
    verdict: str | None
    quality: str | None  # emails: quality; phones: line type
    result: str | None  # emails: result; phones: status
    reason: str | None
    did_you_mean: str | None
    flags: tuple[str, ...]


@dataclass(frozen=True)
class ResultsPage:
    batch: Batch
    rows: list[Row]
    first_seq: int  # the seq range this page examined (inclusive)
    last_seq: int
    next_after: int | None  # cursor of the "next" link (None: at the end)
    prev_before: int | None  # cursor of the "previous" link (None: at the start)
    stopped_short: bool  # the scan cap ended the page before it was full
    decision_counts: dict[str, int] | None  # None: not computed yet (see decision_counts)
    total_seq: int  # the last seq of the batch (for "searched up to row N of M")


def parse_filter(
    record_type: str,
    *,
    decisions: list[str],
    verdicts: list[str],
    qualities: list[str],
    flags: list[str],
    search: str | None,
) -> ResultFilter:
    """Query parameters -> a :class:`ResultFilter`; an unknown name is a 400 that lists the
    allowed ones."""
    allowed_flags = FLAGS[record_type]

    def chosen(names: list[str], allowed: tuple[str, ...], what: str) -> frozenset[Any] | None:
        wanted = {n.strip().lower() for n in names if n.strip()}
        unknown = sorted(wanted - set(allowed))
        if unknown:
            raise BadRequest(f"Unknown {what} {', '.join(unknown)}; use {', '.join(allowed)}.")
        return frozenset(wanted) or None

    text = (search or "").strip()
    if len(text) > SEARCH_MAX:
        raise BadRequest(f"The search is limited to {SEARCH_MAX} characters.")
    return ResultFilter(
        decisions=chosen(decisions, DECISIONS, "decision"),
        verdicts=chosen(verdicts, VERDICTS, "verdict"),
        qualities=chosen(qualities, QUALITIES if record_type == "email" else (), "quality"),
        flags=chosen(flags, allowed_flags, "flag"),
        search=text or None,
    )


def _row(record_type: str, seq: int, value: str, result: dict[str, Any] | None) -> Row:
    if not result:
        return Row(seq, value, None, None, None, None, None, None, ())
    quality_key, result_key = (
        ("quality", "result") if record_type == "email" else ("type", "status")
    )
    reason = result.get("reason") or result.get("evidence")
    return Row(
        seq=seq,
        value=value,
        decision=decision(record_type, result),
        verdict=verdict_of(result),
        quality=result.get(quality_key),
        result=result.get(result_key),
        reason=None if reason is None else str(reason),
        did_you_mean=result.get("did_you_mean"),
        flags=tuple(flag for flag in FLAGS[record_type] if result.get(flag) is True),
    )


def cached_counts(batch: Batch) -> dict[str, int] | None:
    """The decision counts of a finished batch if this process has computed them already."""
    if batch.status != states.DONE or batch.finished_at is None:
        return None
    return _COUNTS.get((batch.pk, batch.finished_at.isoformat(), "decision"))


def decision_counts(session: Session, account_id: str, batch_uuid: str) -> dict[str, int]:
    """Rows per decision (``none``: not verified yet). One grouped scan of the batch: about
    6.6 s at 1,000,000 rows on SQLite (docs/benchmarks.md), so the page asks for it apart
    (the chips fill in when it answers); a finished batch's counts are kept in memory."""
    batch = get_batch(session, account_id, batch_uuid)
    if batch.status not in (states.ONGOING, states.DONE):
        raise NotVerified()
    known = cached_counts(batch)
    if known is not None:
        return known
    counts = results_table.decision_counts(session, batch.pk, batch.record_type)
    if batch.status == states.DONE and batch.finished_at is not None:
        if len(_COUNTS) >= _COUNTS_MAX:
            _COUNTS.clear()
        _COUNTS[(batch.pk, batch.finished_at.isoformat(), "decision")] = counts
    return counts


def field_counts(session: Session, batch: Batch, field: str) -> dict[str, int]:
    """The batch page's breakdown chart (``quality`` or ``type`` per verified row): a scan of
    the batch (10 s at 1,000,000 rows on a busy machine), so a finished batch's figures are
    computed once per process."""
    if batch.status != states.DONE or batch.finished_at is None:
        return records.result_field_counts(session, batch.pk, field)
    key = (batch.pk, batch.finished_at.isoformat(), field)
    if key not in _COUNTS:
        if len(_COUNTS) >= _COUNTS_MAX:
            _COUNTS.clear()
        _COUNTS[key] = records.result_field_counts(session, batch.pk, field)
    return _COUNTS[key]


def results_page(
    session: Session,
    account_id: str,
    batch_uuid: str,
    wanted: ResultFilter,
    *,
    after: int | None = None,
    before: int | None = None,
    size: int = PAGE_SIZES[0],
    counts: bool = False,
) -> ResultsPage:
    """One page of the batch's rows matching ``wanted``, after the seq ``after`` (default: from
    the start) or, for a "previous" link, before the seq ``before``. ``counts`` computes the
    decision counts when not known yet (a scan of the batch)."""
    batch = get_batch(session, account_id, batch_uuid)
    if batch.status not in (states.ONGOING, states.DONE):
        raise NotVerified()
    if size not in PAGE_SIZES:
        raise BadRequest(f"The page size is one of {', '.join(map(str, PAGE_SIZES))}.")
    low, high = results_table.seq_bounds(session, batch.pk)
    common = {"limit": size, "scan": SCAN_ROWS}
    if before is not None:
        window = results_table.page_before(
            session, batch.pk, batch.record_type, wanted, before=before, **common
        )
    else:
        start = low - 1 if after is None else after
        window = results_table.page_after(
            session, batch.pk, batch.record_type, wanted, after=start, **common
        )
    rows = [_row(batch.record_type, r.seq, r.value, r.result) for r in window.rows]
    return ResultsPage(
        batch=batch,
        rows=rows,
        first_seq=window.first,
        last_seq=min(window.last, high),
        next_after=window.last if window.last < high else None,
        prev_before=window.first if window.first > low else None,
        stopped_short=not window.complete and window.last < high,
        decision_counts=(
            decision_counts(session, account_id, batch_uuid) if counts else cached_counts(batch)
        ),
        total_seq=high,
    )
