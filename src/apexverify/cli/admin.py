"""Server-side commands: they act on the database named by ``APEXVERIFY_DATABASE_URL``.

They find it the way ``serve`` does (the settings: the environment, ``--env-file``), and
only ``migrate`` and ``serve`` create a database: the others refuse, creating nothing, when
there is none where they look (``store.migrate.require_database``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .. import logs
from ..accounts import service as accounts
from ..settings import Settings
from ..store.db import Store
from ..store.migrate import open_store, require_database
from . import client_commands


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run the API server")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument(
        "--init-demo",
        action="store_true",
        help="on an empty database, create a demo account and print its API key; "
        "later starts say how to get a new key",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes (more than 1 only in scale-out mode, with apexverify worker)",
    )
    serve.add_argument(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="trust X-Forwarded-For/-Proto from --forwarded-allow-ips (default: on)",
    )
    serve.add_argument(
        "--forwarded-allow-ips",
        default=None,
        metavar="IPS",
        help="comma-separated proxy addresses or networks to trust, or '*' "
        "(default: $FORWARDED_ALLOW_IPS, else 127.0.0.1,::1)",
    )
    serve.add_argument(
        "--log-level",
        type=str.upper,
        choices=logs.LEVELS,
        default=None,
        help="overrides APEXVERIFY_LOG_LEVEL for this run",
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
    """The server's database, which must exist: these commands never create one."""
    settings = Settings.from_env()
    quiet_logs(settings)
    return open_store(settings.database_url, create=False)


def quiet_logs(settings: Settings) -> None:
    """One-shot commands print their results; their log lines (alembic's "Context impl
    SQLiteImpl" and the like) show from WARNING up, or everything at DEBUG."""
    level = "WARNING" if settings.log_level == "INFO" else settings.log_level
    logs.configure(level, settings.log_format)


# Commands of other modules that act on an existing database (cache_commands opens the
# store itself): main checks it exists before running them.
_NEEDS_DATABASE = frozenset({"cache"})


def require_database_for(args: argparse.Namespace) -> None:
    """Refuse (ConfigurationError, nothing created) before a command in ``_NEEDS_DATABASE``
    would create a database where it found none."""
    if getattr(args, "command", None) in _NEEDS_DATABASE:
        require_database(Settings.from_env().database_url)


def _print(data: Any, as_json: bool, text: str) -> None:
    print(json.dumps(data, indent=2) if as_json else text)


def _serve(args: argparse.Namespace) -> int:
    from ..composition import build_services
    from .server import ServeOptions, serve

    settings = Settings.from_env()
    level = args.log_level or settings.log_level
    logs.configure(level, settings.log_format)
    services = build_services(settings)  # a bad configuration stops here, before serving
    if args.workers < 1:
        return fail("apexverify serve: --workers must be 1 or more", code=2)
    if args.workers > 1 and not services.queue.distributed:
        services.store.dispose()
        return fail(_ONE_PROCESS.format(workers=args.workers), code=2)
    if args.init_demo:
        _init_demo(settings)
    options = ServeOptions(
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
        log_level=level,
        log_format=settings.log_format,
    )
    serve(services, options)
    return 0


_ONE_PROCESS = (
    "apexverify serve --workers {workers}: several server processes need the procrastinate "
    "job runner (scale-out mode: APEXVERIFY_DATABASE_URL=postgresql://... and `apexverify "
    "worker` processes; docs/deployment.md). This configuration runs background jobs inside "
    "the server process (the in-process runner), so every one of the {workers} processes "
    "would run the same jobs. Run one process (--workers 1, the default), or scale out."
)


def _init_demo(settings: Settings) -> None:
    """A demo account on an empty database, its key printed once; at every later start, how
    to get a key (keys are stored hashed: the printed one cannot be shown again)."""
    store = open_store(settings.database_url)
    try:
        with store.write() as session:
            existing = accounts.list_accounts(session)
            if existing:
                demo = next((a for a in existing if a.name == "demo" and a.sandbox), None)
                print(_demo_reminder(demo.id if demo else None, len(existing)), flush=True)
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
    finally:
        store.dispose()


def _demo_reminder(demo_id: str | None, accounts_count: int) -> str:
    program = _program()
    if demo_id is None:
        return (
            f"{accounts_count} accounts exist ({program} account list). API keys are shown once "
            f"and cannot be recovered; a new one: {program} key create --account ACCOUNT_ID\n"
        )
    return (
        f"Sandbox demo account {demo_id}: its API key was shown when it was created and "
        f"cannot be recovered. A new key:\n  {program} key create --account {demo_id}\n"
    )


def _program() -> str:
    """How the person started this command (``.venv/bin/apexverify`` from ``make serve``),
    so a printed command can be pasted as it is."""
    argv0 = sys.argv[0] if sys.argv else ""
    return argv0 if Path(argv0).name == "apexverify" else "apexverify"


def _migrate(_args: argparse.Namespace) -> int:
    # Imported here: the account and key commands need only the store (a faster start).
    from ..composition import build_services, prepare_database
    from ..store.migrate import upgrade

    settings = Settings.from_env()
    logs.configure(settings.log_level, settings.log_format)
    services = build_services(settings)
    try:
        report = upgrade(services.store)  # what was done, said below
        prepare_database(services)  # the rest (procrastinate's schema); alembic has no more
    finally:
        services.store.dispose()
    print(report)
    return 0


def _worker(args: argparse.Namespace) -> int:
    import asyncio

    from ..batches import tasks
    from ..composition import build_services, prepare_database
    from ..jobs.procrastinate_queue import ProcrastinateQueue
    from ..jobs.queue_metrics import watch_queue
    from ..jobs.worker import run_worker

    settings = Settings.from_env()
    logs.configure(settings.log_level, settings.log_format)
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


def fail(message: str, code: int = 1) -> int:
    print(message, file=sys.stderr)
    return code
