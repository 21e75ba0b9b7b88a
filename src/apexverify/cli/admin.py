"""Server-side commands: they act on the database named by ``APEXVERIFY_DATABASE_URL``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from ..accounts import service as accounts
from ..settings import Settings
from ..store.db import Store
from ..store.migrate import open_store
from . import client_commands


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run the API server")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument(
        "--init-demo",
        action="store_true",
        help="on an empty database, create a demo account and print its API key",
    )
    serve.set_defaults(handler=_serve)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(handler=_migrate)

    worker = sub.add_parser(
        "worker", help="run background jobs from PostgreSQL (scale-out mode; see deployment docs)"
    )
    worker.add_argument(
        "--concurrency", type=int, default=4, help="jobs this process runs at once (default 4)"
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="serve Prometheus metrics of this worker on this port (0 = off)",
    )
    worker.set_defaults(handler=_worker)

    account = sub.add_parser("account", help="manage accounts").add_subparsers(
        dest="account_command", required=True
    )
    create = account.add_parser("create", help="create an account and print its first API key")
    create.add_argument("--name", required=True)
    create.add_argument("--email-credits", type=float, default=0)
    create.add_argument("--phone-credits", type=float, default=0)
    create.add_argument(
        "--sandbox",
        action="store_true",
        help="deterministic magic-value verdicts, never charged, no network",
    )
    create.add_argument("--json", action="store_true")
    create.set_defaults(handler=_account_create)
    lst = account.add_parser("list", help="list accounts")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(handler=_account_list)

    key = sub.add_parser("key", help="manage API keys").add_subparsers(
        dest="key_command", required=True
    )
    kcreate = key.add_parser("create", help="create a labelled key (shown once)")
    kcreate.add_argument("--account", required=True, help="account id")
    kcreate.add_argument("--label", default="")
    kcreate.add_argument(
        "--publishable",
        action="store_true",
        help="a browser key (apx_pub_...): POST /v1/unit only, from the --origin pages",
    )
    kcreate.add_argument(
        "--origin",
        action="append",
        default=[],
        metavar="URL",
        help="an allowed origin of a publishable key, scheme://host[:port] (repeatable)",
    )
    kcreate.add_argument("--json", action="store_true")
    kcreate.set_defaults(handler=_key_create)
    klist = key.add_parser(
        "list", help="list an account's keys (secret ones by prefix, publishable ones in full)"
    )
    klist.add_argument("--account", required=True)
    klist.add_argument("--json", action="store_true")
    klist.set_defaults(handler=_key_list)
    krevoke = key.add_parser("revoke", help="revoke a key at once")
    krevoke.add_argument("--account", required=True)
    krevoke.add_argument("key_id")
    krevoke.set_defaults(handler=_key_revoke)

    credits = sub.add_parser(
        "credits", help="show balances (client) or, with 'add', top up an account (admin)"
    )
    client_commands.add_client_options(credits)
    credits.set_defaults(handler=client_commands.show_credits)
    csub = credits.add_subparsers(dest="credits_command")
    add = csub.add_parser("add", help="add (or with a negative amount remove) credits")
    add.add_argument("--account", required=True)
    add.add_argument("--type", choices=("email", "phone"), required=True)
    add.add_argument("--amount", type=float, required=True)
    add.set_defaults(handler=_credits_add)


def _store() -> Store:
    return open_store(Settings.from_env().database_url)


def _print(data: Any, as_json: bool, text: str) -> None:
    print(json.dumps(data, indent=2) if as_json else text)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ..composition import build_services
    from .server import header_timeout_protocol

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    settings = Settings.from_env()
    services = build_services(settings)  # a bad configuration stops here, before serving
    from ..app import create_app

    if args.init_demo:
        _init_demo(settings)
    app = create_app(services=services)
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level="info",
        timeout_graceful_shutdown=5,
        http=header_timeout_protocol(settings.header_timeout_seconds),
    )
    return 0


def _init_demo(settings: Settings) -> None:
    store = open_store(settings.database_url)
    with store.write() as session:
        if accounts.list_accounts(session):
            return
        account, key = accounts.create_account(
            session,
            "demo",
            sandbox=True,
            email_credits=10_000,
            phone_credits=10_000,
            key_label="demo",
        )
    print(
        f"Created sandbox demo account {account.id}.\nAPI key (shown once): {key.api_key}\n",
        flush=True,
    )
    store.dispose()


def _migrate(_args: argparse.Namespace) -> int:
    # Imported here: the account and key commands need only the store (a faster start).
    from ..composition import build_services, prepare_database

    services = build_services(Settings.from_env())
    prepare_database(services)
    services.store.dispose()
    print("database is at the latest schema")
    return 0


def _worker(args: argparse.Namespace) -> int:
    import asyncio

    from ..batches import tasks
    from ..composition import build_services, prepare_database
    from ..jobs.procrastinate_queue import ProcrastinateQueue
    from ..jobs.queue_metrics import watch_queue
    from ..jobs.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    settings = Settings.from_env()
    if not settings.is_postgres:
        return fail("apexverify worker needs APEXVERIFY_DATABASE_URL=postgresql://...")
    services = build_services(settings.replace(job_runner="procrastinate"))
    assert isinstance(services.queue, ProcrastinateQueue)
    prepare_database(services)
    periodic = tasks.register(services)
    if args.metrics_port:
        from prometheus_client import start_http_server

        watch_queue(services.store)
        start_http_server(args.metrics_port, addr=settings.host)

    async def work(queue: ProcrastinateQueue) -> None:
        try:
            await run_worker(queue, max(1, args.concurrency), periodic)
        finally:
            await services.engines.aclose()

    try:
        asyncio.run(work(services.queue))
    finally:
        services.store.dispose()
    return 0


def _account_create(args: argparse.Namespace) -> int:
    store = _store()
    with store.write() as session:
        account, key = accounts.create_account(
            session,
            args.name,
            sandbox=args.sandbox,
            email_credits=args.email_credits,
            phone_credits=args.phone_credits,
        )
    data = {"account_id": account.id, "api_key": key.api_key, "sandbox": args.sandbox}
    _print(data, args.json, f"account {account.id}\nAPI key (shown once): {key.api_key}")
    return 0


def _account_list(args: argparse.Namespace) -> int:
    store = _store()
    with store.read() as session:
        rows = [
            {"account_id": a.id, "name": a.name, "sandbox": a.sandbox, **accounts.balances(a)}
            for a in accounts.list_accounts(session)
        ]
    text = "\n".join(
        f"{r['account_id']}  {r['name']}  email={r['email_credit']} phone={r['phone_credit']}"
        f"{'  (sandbox)' if r['sandbox'] else ''}"
        for r in rows
    )
    _print(rows, args.json, text or "no accounts")
    return 0


def _key_create(args: argparse.Namespace) -> int:
    store = _store()
    with store.write() as session:
        new = accounts.create_key(
            session, args.account, args.label, publishable=args.publishable, origins=args.origin
        )
    data: dict[str, Any] = {"id": new.key_id, "api_key": new.api_key, "kind": new.kind}
    text = f"key {new.key_id}\nAPI key (shown once): {new.api_key}"
    if new.allowed_origins:
        data["allowed_origins"] = list(new.allowed_origins)
        text = (
            f"key {new.key_id}\npublishable key (POST /v1/unit only, from "
            f"{', '.join(new.allowed_origins)}): {new.api_key}"
        )
    _print(data, args.json, text)
    return 0


def _key_list(args: argparse.Namespace) -> int:
    store = _store()
    with store.read() as session:
        keys = accounts.key_summaries(session, args.account)
    text = "\n".join(
        (
            f"{k['id']}  {k['public_key']}  {k['label']}  from {' '.join(k['allowed_origins'])}"
            if k["public_key"]
            else f"{k['id']}  {k['prefix']}…  {k['label']}"
        )
        + (f"  revoked {k['revoked_at']}" if k["revoked_at"] else "")
        for k in keys
    )
    _print(keys, args.json, text or "no keys")
    return 0


def _key_revoke(args: argparse.Namespace) -> int:
    store = _store()
    with store.write() as session:
        accounts.revoke_key(session, args.account, args.key_id)
    print(f"revoked {args.key_id}")
    return 0


def _credits_add(args: argparse.Namespace) -> int:
    store = _store()
    with store.write() as session:
        accounts.add_credits(session, args.account, args.type, args.amount)
    with store.read() as session:
        balances = accounts.balances(accounts.get_account(session, args.account))
    print(json.dumps(balances))
    return 0


def fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1
