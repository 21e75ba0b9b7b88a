"""``apexverify cache``: look at and purge the result caches (server side, on the database
named by ``APEXVERIFY_DATABASE_URL``).

    apexverify cache summary [selection]           counts by scope, type, verdict, evidence
    apexverify cache purge [selection] [--dry-run]  delete the selected entries

A selection combines ``--scope`` (``global``, an account id, or ``all``), ``--type``,
``--verdict``, ``--evidence`` and ``--before``/``--after`` (the time an entry was verified).
``purge`` refuses to run without any criterion unless ``--all`` is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from ..batches.repository.caches import GLOBAL_SCOPE, CacheSelection, count, purge, summary
from ..settings import Settings
from ..store.migrate import open_store


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cache = sub.add_parser("cache", help="inspect and purge the result caches").add_subparsers(
        dest="cache_command", required=True
    )
    show = cache.add_parser("summary", help="count cache entries by scope, verdict, evidence")
    _selection_arguments(show)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_summary)
    drop = cache.add_parser("purge", help="delete the selected cache entries")
    _selection_arguments(drop)
    drop.add_argument("--all", action="store_true", help="allow a purge with no criterion")
    drop.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    drop.add_argument("--json", action="store_true")
    drop.set_defaults(handler=_purge)


def _selection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scope", default="all", help="'global', an account id, or 'all' (default)"
    )
    parser.add_argument("--type", choices=("email", "phone"), dest="record_type")
    parser.add_argument(
        "--verdict", action="append", choices=("valid", "wrong"), default=[], help="repeatable"
    )
    parser.add_argument(
        "--evidence", action="append", default=[], help="e.g. nxdomain, user_unknown; repeatable"
    )
    parser.add_argument("--before", type=_moment, help="verified before (ISO date or date-time)")
    parser.add_argument("--after", type=_moment, help="verified at or after (ISO date/time)")


def _moment(text: str) -> int:
    """An ISO 8601 date or date-time (UTC unless it says otherwise) as epoch seconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or date-time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _selection(args: argparse.Namespace) -> CacheSelection:
    scope = {"all": None, "global": GLOBAL_SCOPE}.get(args.scope, args.scope)
    return CacheSelection(
        scope=scope,
        record_type=args.record_type,
        verdicts=tuple(args.verdict),
        evidence=tuple(args.evidence),
        verified_before=args.before,
        verified_after=args.after,
    )


def _summary(args: argparse.Namespace) -> int:
    store = open_store(Settings.from_env().database_url)
    with store.read() as session:
        rows = summary(session, _selection(args))
    if args.json:
        keys = ("scope", "type", "verdict", "evidence", "entries")
        print(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], indent=2))
        return 0
    for scope, record_type, verdict, evidence, entries in rows:
        print(f"{scope:8} {record_type:6} {verdict:8} {evidence or '-':24} {entries}")
    if not rows:
        print("no cache entries match")
    return 0


def _purge(args: argparse.Namespace) -> int:
    selection = _selection(args)
    if not selection.conditions() and not args.all:
        print(
            "error: no criterion given; add --scope/--type/--verdict/--evidence/--before/"
            "--after, or --all to purge every cache entry",
            file=sys.stderr,
        )
        return 2
    store = open_store(Settings.from_env().database_url)
    with store.write() as session:
        removed = count(session, selection) if args.dry_run else purge(session, selection)
    verb = "would remove" if args.dry_run else "removed"
    if args.json:
        print(json.dumps({"removed": 0 if args.dry_run else removed, "matched": removed}))
    else:
        print(f"{verb} {removed} cache entries")
    return 0
