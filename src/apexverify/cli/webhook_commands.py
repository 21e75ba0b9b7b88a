"""``apexverify webhook``: an account's webhook endpoints, server side (on the database named
by ``APEXVERIFY_DATABASE_URL``, with the server's secret key, which seals the signing
secrets: run it with the server's settings).

    apexverify webhook add --account ID URL [--event TYPE ...] [--description TEXT]
    apexverify webhook list --account ID
    apexverify webhook remove --account ID WEBHOOK_ID
    apexverify webhook deliveries --account ID WEBHOOK_ID [--limit N]

``add`` prints the signing secret once. ``--json`` on each for scripts.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..accounts import service as accounts
from ..batches.hashing import load_secret
from ..settings import Settings
from ..store.db import Store
from ..store.migrate import open_store
from ..webhooks import service
from ..webhooks.events import EVENT_TYPES
from ..webhooks.views import delivery_view, endpoint_view


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hooks = sub.add_parser("webhook", help="manage an account's webhook endpoints").add_subparsers(
        dest="webhook_command", required=True
    )
    add = hooks.add_parser("add", help="register a URL for the account's batch events")
    add.add_argument("--account", required=True, help="account id")
    add.add_argument("url", help="https:// (or http://) URL of the receiver")
    add.add_argument(
        "--event",
        action="append",
        choices=EVENT_TYPES,
        default=[],
        dest="events",
        help="send only this event (repeatable; default: every event)",
    )
    add.add_argument("--description", default="", help="a note to recognise it")
    add.add_argument("--json", action="store_true")
    add.set_defaults(handler=_add)
    show = hooks.add_parser("list", help="the account's endpoints (no secrets)")
    show.add_argument("--account", required=True)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_list)
    drop = hooks.add_parser("remove", help="remove an endpoint and its delivery log")
    drop.add_argument("--account", required=True)
    drop.add_argument("webhook_id")
    drop.set_defaults(handler=_remove)
    log = hooks.add_parser("deliveries", help="an endpoint's latest deliveries, newest first")
    log.add_argument("--account", required=True)
    log.add_argument("webhook_id")
    log.add_argument("--limit", type=int, default=service.DELIVERY_LOG_LIMIT)
    log.add_argument("--json", action="store_true")
    log.set_defaults(handler=_deliveries)


def _store(settings: Settings) -> Store:
    return open_store(settings.database_url)


def _add(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    secret = load_secret(settings.secret_key, settings.data_dir)
    store = _store(settings)
    with store.write() as session:
        accounts.get_account(session, args.account)  # a clear "not found" for a typo
        new = service.create_endpoint(
            session,
            settings,
            secret,
            args.account,
            args.url,
            events=args.events,
            description=args.description,
        )
        view = {**endpoint_view(new.endpoint), "secret": new.secret}
    if args.json:
        print(json.dumps(view, indent=2))
        return 0
    print(f"webhook {view['id']} -> {view['url']}")
    print(f"events: {', '.join(view['events']) or 'all'}")
    print(f"signing secret (shown once): {new.secret}")
    return 0


def _list(args: argparse.Namespace) -> int:
    with _store(Settings.from_env()).read() as session:
        views = [endpoint_view(e) for e in service.list_endpoints(session, args.account)]
    if args.json:
        print(json.dumps(views, indent=2))
        return 0
    for view in views:
        events = ",".join(view["events"]) or "all"
        print(f"{view['id']}  {view['created_at']}  {events}  {view['url']}")
    if not views:
        print("no webhook endpoints")
    return 0


def _remove(args: argparse.Namespace) -> int:
    with _store(Settings.from_env()).write() as session:
        service.remove_endpoint(session, args.account, args.webhook_id)
    print(f"removed webhook {args.webhook_id}")
    return 0


def _deliveries(args: argparse.Namespace) -> int:
    limit = max(1, min(args.limit, 1000))
    with _store(Settings.from_env()).read() as session:
        rows = service.deliveries(session, args.account, args.webhook_id, limit)
        views = [delivery_view(d) for d in rows]
    if args.json:
        print(json.dumps(views, indent=2))
        return 0
    for view in views:
        print(_delivery_line(view))
    if not views:
        print("no deliveries yet")
    return 0


def _delivery_line(view: dict[str, Any]) -> str:
    code = view["last_status_code"] or "-"
    error = f"  {view['last_error']}" if view["last_error"] else ""
    return (
        f"{view['created_at']}  {view['id']}  {view['event']:<30} {view['status']:<9} "
        f"attempts={view['attempts']} status={code}{error}"
    )
