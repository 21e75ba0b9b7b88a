"""``apexverify verify``: a list or a spreadsheet in, results out, through the SDK.

    apexverify verify contacts.csv --column Email --output cleaned.csv --keep deliverable,risky

The input is a ``.txt`` list (one value per line, the hosted API's format) or a table (CSV,
TSV, semicolon CSV, XLSX, ODS: by extension, or by content for other names), uploaded with
the server's ``column`` extension (``--column`` or ``auto``) so it is parsed once. Each
``--output``'s extension picks its format (``.csv``, ``.xlsx``, ``.json``); a table's rows
come back merged with the result columns. Without ``--output`` the results are written next
to the input (:func:`default_output`) and the command says where.

The screen, in order: the parsing spinner; the parse summary and the cost question (the live
display is stopped first, so the question is never drawn under it); then the verification
bar; then the stats.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ..client import BatchStatus, Cancellation, Client
from .client_common import UsageError, add_client_options, console, errors, guard, make_client

TABLE_SUFFIXES = frozenset({".csv", ".tsv", ".tab", ".xlsx", ".xlsm", ".xls", ".ods"})
_ZIP_MAGIC = b"PK\x03\x04"  # XLSX and ODS are zip files


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verify = sub.add_parser(
        "verify",
        help="verify a list or spreadsheet end to end (upload ... results file)",
        description="Upload a .txt list or a spreadsheet (CSV, TSV, XLSX, ODS), show the cost, "
        "launch, wait, and write the results.",
    )
    verify.add_argument("file", nargs="?", help="a .txt list (one per line) or a spreadsheet")
    verify.add_argument("--type", choices=("email", "phone"), default="email")
    verify.add_argument("--country", default="US", help="target_country (ISO 3166-1 alpha-2)")
    verify.add_argument("--name", default=None)
    verify.add_argument(
        "--column",
        default=None,
        help="spreadsheet column holding the values: a header name or a 1-based number "
        "(default: found automatically)",
    )
    verify.add_argument(
        "--header",
        choices=("auto", "true", "false"),
        default=None,
        help="does the spreadsheet's first row hold column names (default auto)",
    )
    verify.add_argument(
        "--output",
        action="append",
        default=[],
        help="results file; its extension picks the format: .csv, .xlsx or .json (repeatable;"
        " default: <input>.results.<csv|xlsx|json> next to the input)",
    )
    verify.add_argument(
        "--keep",
        default=None,
        metavar="DECISIONS",
        help="write only these rows: deliverable, risky, undeliverable, unknown "
        "(comma-separated, e.g. deliverable,risky)",
    )
    verify.add_argument("--resume", metavar="UUID", help="continue an existing batch")
    verify.add_argument("--yes", action="store_true", help="launch without confirmation")
    verify.add_argument("--no-account-cache", action="store_true")
    verify.add_argument("--no-global-cache", action="store_true")
    verify.add_argument("--keep-duplicates", action="store_true")
    verify.add_argument("--keep-wrong", action="store_true")
    verify.add_argument("--poll", type=float, default=5.0, help="first polling delay (s)")
    add_client_options(verify)
    verify.set_defaults(handler=guard(_verify))


def is_table(path: Path) -> bool:
    """A spreadsheet by extension, else by content: a zip (XLSX/ODS) or a first line with
    a field separator (a one-value-per-line list has none)."""
    if path.suffix.lower() in TABLE_SUFFIXES:
        return True
    if path.suffix.lower() == ".txt":
        return False
    with path.open("rb") as handle:
        head = handle.read(4096)
    if head.startswith(_ZIP_MAGIC):
        return True
    first = head.split(b"\n", 1)[0]
    return any(sep in first for sep in (b",", b";", b"\t"))


def default_output(path: Path, table: bool) -> Path:
    """Next to the input: ``contacts.csv`` -> ``contacts.results.csv``; an XLSX/ODS input
    -> ``.results.xlsx``; a TSV -> ``.results.csv`` (the exports are CSV, XLSX or JSON); a
    ``.txt`` list -> ``.results.json`` (the complete export, and the hosted API's format)."""
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm", ".xls", ".ods"):
        ext = ".xlsx"
    elif table:
        ext = ".csv"
    else:
        ext = ".json"
    return path.with_name(f"{path.stem}.results{ext}")


def _check_input(name: str) -> Path:
    path = Path(name)
    if not path.exists():
        raise UsageError(f"no such file: {name}")
    if not path.is_file():
        raise UsageError(f"not a file: {name}")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from None
    return path


class _Display:
    """The live display, stopped before any question so that nothing draws over it."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._phase = ""

    def _show(self, phase: str) -> Progress:
        if self._bar is not None and self._phase == phase:
            return self._bar
        self.stop()
        if phase == "Parsing":
            columns: tuple[Any, ...] = (SpinnerColumn(), TextColumn("Parsing"), TimeElapsedColumn())
            # Transient: once parsed, the summary line takes its place.
            self._bar = Progress(*columns, console=errors, transient=True)
        else:
            columns = (
                TextColumn("Verifying"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            self._bar = Progress(*columns, console=errors)
        self._bar.start()
        self._task = self._bar.add_task(phase, total=None)
        self._phase = phase
        return self._bar

    def update(self, status: BatchStatus) -> None:
        if not self.enabled:
            return
        if status.status == "parsing_content":
            self._show("Parsing")
        elif status.status in ("verification_ongoing", "verification_done"):
            bar = self._show("Verifying")
            assert self._task is not None
            bar.update(self._task, total=status.to_verify or None, completed=status.verified)
            if status.done:
                bar.update(self._task, total=status.to_verify or 1, completed=status.to_verify or 1)
                self.stop()
        else:
            self.stop()  # ready_for_verification: the question comes next

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar, self._task, self._phase = None, None, ""


def _parse_summary(status: BatchStatus) -> str | None:
    cost, content = status.cost, status.content
    if not (cost and content):
        return None
    # Parse counts are rows accepted for verification; "valid" is kept for the verdicts.
    return (
        f"Parsed: {content.valid} accepted, {content.wrong} wrong format, "
        f"{content.duplicate} duplicate. Cost: {cost.total:g} credits, "
        f"{cost.cache_account_return} + {cost.cache_global_return} from caches, "
        f"net [bold]{cost.net:g}[/bold]."
    )


def _confirm(args: argparse.Namespace, display: _Display) -> Any:
    def ask(status: BatchStatus) -> bool:
        display.stop()
        summary = _parse_summary(status)
        if summary:
            errors.print(summary, highlight=False, soft_wrap=True)
        if args.yes:
            return True
        errors.print(
            "Launch and spend these credits? [y/N] ", end="", markup=False, highlight=False
        )
        try:
            answer = input()
        except EOFError:
            return False
        return answer.strip().lower() in {"y", "yes"}

    return ask


def _verify(args: argparse.Namespace) -> int:
    if not args.file and not args.resume:
        raise UsageError("give a file to verify or --resume UUID")
    path = _check_input(args.file) if args.file and not args.resume else None
    table = path is not None and (args.column is not None or is_table(path))
    outputs = [Path(o) for o in args.output]
    if not outputs and path is not None:
        outputs = [default_output(path, table)]
    params: dict[str, Any] = {
        "use_account_cache": not args.no_account_cache,
        "use_global_cache": not args.no_global_cache,
        "remove_duplicate": not args.keep_duplicates,
        f"remove_wrong_{args.type}_format": not args.keep_wrong,
    }
    column: str | int | None = None
    if table:
        column = int(args.column) if (args.column or "").isdigit() else (args.column or "auto")
    display = _Display(not args.json)
    client = make_client(args)
    with client:
        try:
            result = client.verify_file(
                path,
                type=args.type,
                target_country=args.country,
                name=args.name,
                batch_uuid=args.resume,
                column=column,
                header=args.header,
                outputs=outputs,
                keep=args.keep,
                confirm=_confirm(args, display),
                on_progress=display.update,
                initial_delay=args.poll,
                **params,
            )
        except KeyboardInterrupt:
            display.stop()
            if client.running is None:
                raise  # nothing launched: plain interruption (130)
            return _offer_cancel(args, client, client.running)
        finally:
            display.stop()
    stats = result.status.stats
    if args.json:
        print(
            json.dumps(
                {
                    "batch_uuid": result.batch_uuid,
                    "stats": stats.raw if stats else {},
                    "outputs": [str(p) for p in result.outputs],
                }
            )
        )
        return 0
    table_out = Table("result", "records", "%", title=f"Batch {result.batch_uuid}")
    if stats is not None:
        table_out.add_row("valid", str(stats.valid), f"{stats.valid_perc:g}")
        table_out.add_row("wrong", str(stats.wrong), f"{stats.wrong_perc:g}")
        table_out.add_row("unknown", str(stats.unknown), f"{stats.unknown_perc:g}")
        table_out.add_row("duplicate", str(stats.duplicate), "")
        table_out.add_row("from caches", str(stats.from_caches), "")
    console.print(table_out)
    for output in result.outputs:
        kept = f" (rows kept: {args.keep})" if args.keep else ""
        console.print(f"wrote {output}{kept}", markup=False, highlight=False, soft_wrap=True)
    if not result.outputs:
        console.print(
            f"no --output: export with apexverify batches export {result.batch_uuid} "
            "--output results.xlsx",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    return 0


def _offer_cancel(args: argparse.Namespace, client: Client, batch_uuid: str) -> int:
    """Ctrl-C while a launched batch runs: the server goes on with it unless cancelled here.
    "y" cancels (exit 0); anything else, or no answer, leaves it running (exit 130). A second
    Ctrl-C at the prompt is a plain interruption."""
    errors.print(
        f"Cancel batch {batch_uuid}? [y/N] ", end="", markup=False, highlight=False, soft_wrap=True
    )
    try:
        answer = input()
    except EOFError:
        answer = ""
    if answer.strip().lower() not in {"y", "yes"}:
        errors.print(
            f"Left running. Resume with: apexverify verify --resume {batch_uuid}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return 130
    print_cancellation(args, batch_uuid, client.cancel(batch_uuid))
    return 0


def print_cancellation(args: argparse.Namespace, batch_uuid: str, done: Cancellation) -> None:
    if args.json:
        print(json.dumps({"batch_uuid": batch_uuid, **done.raw}))
        return
    console.print(
        f"cancelled {batch_uuid}: {done.records_cancelled} records were not verified; "
        f"{done.refunded_credits:g} credits refunded. The results so far: "
        f"apexverify batches export {batch_uuid} --output results.xlsx",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
