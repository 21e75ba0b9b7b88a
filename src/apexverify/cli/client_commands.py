"""Client subcommands: talk to a server over HTTP through the SDK (``apexverify.client``).

Exit codes (also in docs/client.md):
0 success, 1 other error, 2 usage, 3 authentication, 4 insufficient credits, 5 not found,
6 batch ended in internal_error, 7 still rate-limited after waiting, 8 launch declined,
130 interrupted (Ctrl-C; while a launched batch runs, ``verify`` first offers to cancel it:
"y" cancels it and exits 0, anything else leaves it running on the server).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..client import (
    ApexVerifyError,
    AuthenticationError,
    BatchFailed,
    BatchStatus,
    Cancellation,
    Client,
    Declined,
    InsufficientCredits,
    NotFound,
    RateLimited,
)

EXIT_CODES: dict[type[BaseException], int] = {
    AuthenticationError: 3,
    InsufficientCredits: 4,
    NotFound: 5,
    BatchFailed: 6,
    RateLimited: 7,
    Declined: 8,
}
console = Console()
errors = Console(stderr=True)


def add_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None, help="server URL (env APEXVERIFY_URL)")
    parser.add_argument("--api-key", default=None, help="API key (env APEXVERIFY_API_KEY)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verify = sub.add_parser("verify", help="verify a file end to end (upload ... export)")
    verify.add_argument("file", nargs="?", help="a .txt file, one entry per line")
    verify.add_argument("--type", choices=("email", "phone"), default="email")
    verify.add_argument("--country", default="US", help="target_country (ISO 3166-1 alpha-2)")
    verify.add_argument("--name", default=None)
    verify.add_argument(
        "--output", action="append", default=[], help="results file, .xlsx or .json (repeatable)"
    )
    verify.add_argument("--resume", metavar="UUID", help="continue an existing batch")
    verify.add_argument("--yes", action="store_true", help="launch without confirmation")
    verify.add_argument("--no-account-cache", action="store_true")
    verify.add_argument("--no-global-cache", action="store_true")
    verify.add_argument("--keep-duplicates", action="store_true")
    verify.add_argument("--keep-wrong", action="store_true")
    verify.add_argument("--poll", type=float, default=5.0, help="first polling delay (s)")
    add_client_options(verify)
    verify.set_defaults(handler=_guard(_verify))

    batches = sub.add_parser("batches", help="list, show, export or delete batches")
    bsub = batches.add_subparsers(dest="batches_command", required=True)
    lst = bsub.add_parser("list")
    lst.add_argument("--offset", type=int, default=0)
    lst.add_argument("--limit", type=int, default=50)
    add_client_options(lst)
    lst.set_defaults(handler=_guard(_batches_list))
    show = bsub.add_parser("show")
    show.add_argument("uuid")
    add_client_options(show)
    show.set_defaults(handler=_guard(_batches_show))
    export = bsub.add_parser("export")
    export.add_argument("uuid")
    export.add_argument("--output", required=True, help="file name ending .xlsx or .json")
    add_client_options(export)
    export.set_defaults(handler=_guard(_batches_export))
    delete = bsub.add_parser("delete")
    delete.add_argument("uuid")
    add_client_options(delete)
    delete.set_defaults(handler=_guard(_batches_delete))
    cancel = bsub.add_parser(
        "cancel", help="stop a running batch: the records not verified yet are refunded"
    )
    cancel.add_argument("uuid")
    add_client_options(cancel)
    cancel.set_defaults(handler=_guard(_batches_cancel))

    unit = sub.add_parser("unit", help="verify one email or phone in real time")
    unit.add_argument("value")
    unit.add_argument("--type", choices=("email", "phone"), default="email")
    unit.add_argument("--country", default="US")
    add_client_options(unit)
    unit.set_defaults(handler=_guard(_unit))


def _client(args: argparse.Namespace) -> _WatchingClient:
    return _WatchingClient(
        args.api_key or os.environ.get("APEXVERIFY_API_KEY"),
        args.url or os.environ.get("APEXVERIFY_URL"),
    )


class _WatchingClient(Client):
    """Remembers the batch that is (or may be) running, so that Ctrl-C during ``verify``
    can offer to cancel it: the workflow's own calls are the only place that knows."""

    running: str | None = None

    def launch(self, batch_uuid: str) -> str:
        # Before the call: a Ctrl-C while the answer is on its way must still offer the
        # cancel (the server may have launched it); a 409 then says it was not running.
        self.running = batch_uuid
        return super().launch(batch_uuid)

    def status(self, batch_uuid: str) -> BatchStatus:
        status = super().status(batch_uuid)
        self.running = batch_uuid if status.status == "verification_ongoing" else None
        return status


def _guard(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Map SDK errors to the documented exit codes with a one-line message."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except KeyboardInterrupt:
            errors.print("interrupted")
            return 130
        except ApexVerifyError as exc:
            errors.print(f"error: {exc}")
            for cls, code in EXIT_CODES.items():
                if isinstance(exc, cls):
                    return code
            return 1

    return run


def show_credits(args: argparse.Namespace) -> int:
    return _guard(_credits)(args)


def _credits(args: argparse.Namespace) -> int:
    with _client(args) as client:
        credits = client.credits()
    if args.json:
        print(
            json.dumps({"email_credit": credits.email_credit, "phone_credit": credits.phone_credit})
        )
    else:
        table = Table("balance", "credits")
        table.add_row("email", f"{credits.email_credit:g}")
        table.add_row("phone", f"{credits.phone_credit:g}")
        console.print(table)
    return 0


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[BatchStatus], None]]:
    if not enabled:
        yield lambda _status: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=errors) as bar:
        parsing = bar.add_task("Parsing", total=None)
        verifying = bar.add_task("Verifying", total=None, visible=False)

        def update(status: BatchStatus) -> None:
            if status.status != "parsing_content":
                bar.update(parsing, total=1, completed=1)
            if status.status == "verification_ongoing":
                bar.update(
                    verifying,
                    visible=True,
                    total=status.to_verify or None,
                    completed=status.verified,
                )
            if status.done:
                total = (status.stats or {}).get("total_verification", 0)
                bar.update(verifying, visible=True, total=total or 1, completed=total or 1)

        yield update


def _confirm(args: argparse.Namespace) -> Callable[[BatchStatus], bool]:
    def ask(status: BatchStatus) -> bool:
        cost, content = status.cost, status.content
        if cost and content:
            errors.print(
                f"Parsed: {content.valid} valid, {content.wrong} wrong, {content.duplicate} "
                f"duplicate. Cost: {cost.total:g} credits, {cost.cache_account_return} + "
                f"{cost.cache_global_return} from caches, net [bold]{cost.net:g}[/bold]."
            )
        if args.yes:
            return True
        errors.print(escape("Launch and spend these credits? [y/N] "), end="")
        try:
            answer = input()
        except EOFError:
            return False
        return answer.strip().lower() in {"y", "yes"}

    return ask


def _verify(args: argparse.Namespace) -> int:
    if not args.file and not args.resume:
        errors.print("error: give a file to verify or --resume UUID")
        return 2
    params: dict[str, Any] = {
        "use_account_cache": not args.no_account_cache,
        "use_global_cache": not args.no_global_cache,
        "remove_duplicate": not args.keep_duplicates,
        f"remove_wrong_{args.type}_format": not args.keep_wrong,
    }
    client = _client(args)
    with client:
        try:
            with _progress(not args.json) as on_progress:
                result = client.verify_file(
                    args.file,
                    type=args.type,
                    target_country=args.country,
                    name=args.name,
                    batch_uuid=args.resume,
                    outputs=args.output,
                    confirm=_confirm(args),
                    on_progress=on_progress,
                    initial_delay=args.poll,
                    **params,
                )
        except KeyboardInterrupt:
            if client.running is None:
                raise  # nothing launched: plain interruption (130)
            return _offer_cancel(args, client, client.running)
    stats = result.status.stats or {}
    if args.json:
        print(
            json.dumps(
                {
                    "batch_uuid": result.batch_uuid,
                    "stats": stats,
                    "outputs": [str(p) for p in result.outputs],
                }
            )
        )
        return 0
    table = Table("result", "records", "%", title=f"Batch {result.batch_uuid}")
    for key in ("valid", "wrong", "unknown"):
        table.add_row(
            key,
            str(stats.get(f"total_verification_{key}", 0)),
            f"{stats.get(f'total_verification_{key}_perc', 0):g}",
        )
    table.add_row("duplicate", str(stats.get("total_verification_duplicate", 0)), "")
    table.add_row(
        "from caches",
        str(
            stats.get("total_verification_account_cache", 0)
            + stats.get("total_verification_global_cache", 0)
        ),
        "",
    )
    console.print(table)
    for output in result.outputs:
        console.print(f"wrote {output}")
    return 0


def _batches_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        page = client.list_batches(offset=args.offset, limit=args.limit)
    if args.json:
        print(json.dumps({"total": page.total, "batches": [b.raw for b in page.batches]}))
        return 0
    table = Table("uuid", "name", "type", "status", "created", title=f"{page.total} batches")
    for b in page.batches:
        table.add_row(b.batch_uuid, b.name, b.type, b.status, b.created_at)
    console.print(table)
    return 0


def _batches_show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        details = client.details(args.uuid)
    if args.json:
        print(json.dumps(details))
        return 0
    table = Table("field", "value", title=details.get("name"))
    for key, value in details.items():
        table.add_row(key, json.dumps(value) if isinstance(value, dict | list) else str(value))
    console.print(table)
    return 0


def _batches_export(args: argparse.Namespace) -> int:
    target = Path(args.output)
    fmt = "xlsx" if target.suffix.lower() == ".xlsx" else "json"
    with _client(args) as client:
        target.write_bytes(client.export(args.uuid, fmt))
    print(json.dumps({"output": str(target)}) if args.json else f"wrote {target}")
    return 0


def _offer_cancel(args: argparse.Namespace, client: Client, batch_uuid: str) -> int:
    """Ctrl-C while a launched batch runs: the server goes on with it unless cancelled here.
    "y" cancels (exit 0); anything else, or no answer, leaves it running (exit 130). A second
    Ctrl-C at the prompt is a plain interruption."""
    errors.print(f"Cancel batch {batch_uuid}? [y/N] ", end="", markup=False, highlight=False)
    try:
        answer = input()
    except EOFError:
        answer = ""
    if answer.strip().lower() not in {"y", "yes"}:
        errors.print(
            f"Left running. Resume with: apexverify verify --resume {batch_uuid}",
            markup=False,
            highlight=False,
        )
        return 130
    _print_cancellation(args, batch_uuid, client.cancel(batch_uuid))
    return 0


def _print_cancellation(args: argparse.Namespace, batch_uuid: str, done: Cancellation) -> None:
    if args.json:
        print(json.dumps({"batch_uuid": batch_uuid, **done.raw}))
        return
    console.print(
        f"cancelled {batch_uuid}: {done.records_cancelled} records were not verified; "
        f"{done.refunded_credits:g} credits refunded. The results so far: "
        f"apexverify batches export {batch_uuid} --output results.xlsx",
        markup=False,
        highlight=False,
    )


def _batches_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        done = client.cancel(args.uuid)
    _print_cancellation(args, args.uuid, done)
    return 0


def _batches_delete(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.delete(args.uuid)
    print(json.dumps({"deleted": args.uuid}) if args.json else f"deleted {args.uuid}")
    return 0


def _unit(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.unit(args.value, type=args.type, target_country=args.country)
    if args.json:
        print(json.dumps(result))
        return 0
    table = Table("field", "value", title=args.value)
    for key, value in result.items():
        table.add_row(key, str(value))
    console.print(table)
    return 0


__all__ = ["add_client_options", "register", "show_credits"]
