"""Client subcommands: talk to a server over HTTP through the SDK (``apexverify.client``).

``verify`` lives in :mod:`.verify_command`; the options, the client and the exit codes every
client command shares in :mod:`.client_common` (the codes are listed there and in
docs/client.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.table import Table

from . import verify_command
from .client_common import (
    EXIT_CODES,
    UsageError,
    add_client_options,
    console,
    guard,
    make_client,
)
from .verify_command import print_cancellation


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verify_command.register(sub)

    batches = sub.add_parser("batches", help="list, show, export or delete batches")
    bsub = batches.add_subparsers(dest="batches_command", required=True)
    lst = bsub.add_parser("list")
    lst.add_argument("--offset", type=int, default=0)
    lst.add_argument("--limit", type=int, default=50)
    add_client_options(lst)
    lst.set_defaults(handler=guard(_batches_list))
    show = bsub.add_parser("show")
    show.add_argument("uuid")
    add_client_options(show)
    show.set_defaults(handler=guard(_batches_show))
    export = bsub.add_parser("export")
    export.add_argument("uuid")
    export.add_argument(
        "--output", required=True, help="file name; .csv, .xlsx or .json picks the format"
    )
    export.add_argument(
        "--keep",
        default=None,
        metavar="DECISIONS",
        help="only these rows: deliverable, risky, undeliverable, unknown (comma-separated)",
    )
    add_client_options(export)
    export.set_defaults(handler=guard(_batches_export))
    delete = bsub.add_parser("delete")
    delete.add_argument("uuid")
    add_client_options(delete)
    delete.set_defaults(handler=guard(_batches_delete))
    cancel = bsub.add_parser(
        "cancel", help="stop a running batch: the records not verified yet are refunded"
    )
    cancel.add_argument("uuid")
    add_client_options(cancel)
    cancel.set_defaults(handler=guard(_batches_cancel))

    unit = sub.add_parser("unit", help="verify one email or phone in real time")
    unit.add_argument("value")
    unit.add_argument("--type", choices=("email", "phone"), default="email")
    unit.add_argument("--country", default="US")
    add_client_options(unit)
    unit.set_defaults(handler=guard(_unit))


def show_credits(args: argparse.Namespace) -> int:
    return guard(_credits)(args)


def _credits(args: argparse.Namespace) -> int:
    with make_client(args) as client:
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


def _batches_list(args: argparse.Namespace) -> int:
    with make_client(args) as client:
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
    with make_client(args) as client:
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
    if target.suffix.lower() not in (".csv", ".xlsx", ".json"):
        raise UsageError(f"--output {target}: the extension must be .csv, .xlsx or .json")
    with make_client(args) as client:
        client.export_to(args.uuid, target, keep=args.keep)
    print(json.dumps({"output": str(target)}) if args.json else f"wrote {target}")
    return 0


def _batches_cancel(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        done = client.cancel(args.uuid)
    print_cancellation(args, args.uuid, done)
    return 0


def _batches_delete(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        client.delete(args.uuid)
    print(json.dumps({"deleted": args.uuid}) if args.json else f"deleted {args.uuid}")
    return 0


def _unit(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        result = client.unit(args.value, type=args.type, target_country=args.country)
    if args.json:
        print(json.dumps(result.raw))
        return 0
    table = Table("field", "value", title=args.value)
    for key, value in result.raw.items():
        table.add_row(key, str(value))
    console.print(table)
    return 0


__all__ = ["EXIT_CODES", "add_client_options", "register", "show_credits"]
