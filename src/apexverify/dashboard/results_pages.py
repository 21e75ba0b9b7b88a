"""The results table of a batch (``/batches/{uuid}/results``) and its filtered downloads.

Query parameters, all optional and repeatable where a list makes sense: ``decision``,
``verdict``, ``quality``, ``flag``, ``q`` (search), ``size`` (50 or 100), ``after`` / ``before``
(the keyset cursors of the next/previous links). The same parameters on
``/batches/{uuid}/results/export?format=csv|xlsx|json`` download exactly the filtered rows.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse

from ..batches import exports, results_view, service
from ..export.decisions import DECISIONS
from ..export.filters import FLAGS, ResultFilter
from ..web.deps import ReadTx, Svc
from ..web.downloads import export_response
from .auth import User
from .render import page

router = APIRouter(include_in_schema=False)

Names = Annotated[list[str], Query()]
DownloadFormat = Literal["csv", "xlsx", "json"]
# Quick downloads: the list-cleaning choices of the issue (the CLI's --keep values).
QUICK = (
    ("deliverable only", ("deliverable",)),
    ("deliverable + risky", ("deliverable", "risky")),
    ("undeliverable", ("undeliverable",)),
    ("unknown", ("unknown",)),
)
FLAG_LABELS = {
    "is_free": "free provider",
    "is_role": "role account",
    "is_disposable": "disposable",
    "is_catch_all": "catch-all",
    "is_syntax_error": "syntax error",
    "is_ported": "ported",
}


def filter_query(wanted: ResultFilter, **extra: Any) -> list[tuple[str, str]]:
    """The query parameters that reproduce ``wanted`` (links, downloads, pager)."""
    pairs: list[tuple[str, str]] = []
    for key, names in (
        ("decision", wanted.decisions),
        ("verdict", wanted.verdicts),
        ("quality", wanted.qualities),
        ("flag", wanted.flags),
    ):
        pairs += [(key, name) for name in sorted(names or ())]
    if wanted.search:
        pairs.append(("q", wanted.search))
    pairs += [(key, str(value)) for key, value in extra.items() if value is not None]
    return pairs


@router.get("/batches/{batch_uuid}/results")
def results(
    request: Request,
    batch_uuid: UUID,
    user: User,
    tx: ReadTx,
    decision: Names = [],  # noqa: B006 (FastAPI copies query defaults)
    verdict: Names = [],  # noqa: B006
    quality: Names = [],  # noqa: B006
    flag: Names = [],  # noqa: B006
    q: Annotated[str | None, Query()] = None,
    size: Annotated[int, Query()] = results_view.PAGE_SIZES[0],
    after: Annotated[int | None, Query(ge=-1)] = None,
    before: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    batch_type = service.get_batch(tx, user.account.id, str(batch_uuid)).record_type
    wanted = results_view.parse_filter(
        batch_type, decisions=decision, verdicts=verdict, qualities=quality, flags=flag, search=q
    )
    view = results_view.results_page(
        tx, user.account.id, str(batch_uuid), wanted, after=after, before=before, size=size
    )
    base = f"/batches/{view.batch.uuid}/results"
    keep = filter_query(wanted, size=size if size != results_view.PAGE_SIZES[0] else None)

    def link(**cursor: Any) -> str:
        return f"{base}?{urlencode(keep + [(k, str(v)) for k, v in cursor.items()])}"

    def chip(name: str) -> str:
        # A decision chip shows only that decision, with the other criteria kept.
        chosen = ResultFilter(
            decisions=frozenset({name}),  # type: ignore[arg-type]
            verdicts=wanted.verdicts,
            qualities=wanted.qualities,
            flags=wanted.flags,
            search=wanted.search,
        )
        return f"{base}?{urlencode(filter_query(chosen))}"

    def download(fmt: str, decisions: tuple[str, ...] | None = None) -> str:
        chosen = wanted
        if decisions is not None:
            chosen = ResultFilter(decisions=frozenset(decisions))  # type: ignore[arg-type]
        pairs = filter_query(chosen, format=fmt)
        return f"/batches/{view.batch.uuid}/results/export?{urlencode(pairs)}"

    return page(
        request,
        "results.html",
        {
            "user": user,
            "view": view,
            "batch": view.batch,
            "wanted": wanted,
            "size": size,
            "sizes": results_view.PAGE_SIZES,
            "decisions": DECISIONS,
            "verdicts": results_view.VERDICTS,
            "qualities": results_view.QUALITIES if batch_type == "email" else (),
            "flags": [(f, FLAG_LABELS[f]) for f in FLAGS[batch_type]],
            "next_link": None if view.next_after is None else link(after=view.next_after),
            "prev_link": None if view.prev_before is None else link(before=view.prev_before),
            "chip": chip,
            "all_link": f"{base}?{urlencode(filter_query(ResultFilter(search=wanted.search)))}",
            "download": download,
            "quick": QUICK,
            "filtered": not wanted.empty,
        },
    )


@router.get("/batches/{batch_uuid}/results/counts")
def counts(batch_uuid: UUID, user: User, tx: ReadTx) -> dict[str, int]:
    """Rows per decision, for the chips (fetched by the page: a scan of the whole batch)."""
    return results_view.decision_counts(tx, user.account.id, str(batch_uuid))


@router.get("/batches/{batch_uuid}/results/export", response_model=None)
def export_filtered(
    batch_uuid: UUID,
    user: User,
    services: Svc,
    tx: ReadTx,
    format: Annotated[DownloadFormat, Query()],
    decision: Names = [],  # noqa: B006
    verdict: Names = [],  # noqa: B006
    quality: Names = [],  # noqa: B006
    flag: Names = [],  # noqa: B006
    q: Annotated[str | None, Query()] = None,
) -> StreamingResponse | FileResponse:
    """Exactly the rows the table shows for the same filter (every page of it), in the
    export use case's formats: CSV and XLSX merged back into the uploaded table when the batch
    came from one, JSON keyed by value."""
    batch = exports.exportable(tx, user.account.id, str(batch_uuid))
    wanted = results_view.parse_filter(
        batch.record_type,
        decisions=decision,
        verdicts=verdict,
        qualities=quality,
        flags=flag,
        search=q,
    )
    return export_response(services, batch, format, result_filter=None if wanted.empty else wanted)
