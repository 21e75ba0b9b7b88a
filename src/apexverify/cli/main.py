"""The ``apexverify`` command: server administration and the API client in one CLI.

Server-side commands (``serve``, ``migrate``, ``worker``, ``account``, ``key``, ``credits add``)
live in :mod:`.admin`, ``backup``/``restore`` in :mod:`.backup_commands`, ``cache`` in
:mod:`.cache_commands`; they talk to the database
directly. Client commands (``verify``, ``batches``, ``credits`` without a subcommand,
``unit``) live in :mod:`.client_commands` and talk to a server over HTTP.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import os
import sys
from collections.abc import Sequence

from ..errors import ApexError, ConfigurationError
from . import admin, backup_commands, cache_commands, client_commands, webhook_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="apexverify", description="ApexVerify: verify email and phone lists."
    )
    parser.add_argument(
        "--env-file",
        metavar="FILE",
        help="read APEXVERIFY_* settings from FILE (e.g. the server's systemd EnvironmentFile);"
        " the environment wins over it. Same as APEXVERIFY_ENV_FILE=FILE",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    admin.register(sub)
    backup_commands.register(sub)
    cache_commands.register(sub)
    webhook_commands.register(sub)
    client_commands.register(sub)
    return parser


def _light_main_module() -> None:
    """Let child processes started by multiprocessing skip importing this process's main.

    With forkserver or spawn (the parse pool, ``batches/parsing.py``) every child imports the
    parent's main module, unless that names itself a package's ``__main__``. The console
    script has no spec, so each parse worker imported it, and with it the whole CLI and web
    app: 95 MB of RSS per idle worker instead of about 45 MB (measured), which pushed a 1M-row
    batch past its memory budget (docs/benchmarks.md). A spec named ``*.__main__`` makes the
    children skip it (``multiprocessing.spawn._fixup_main_from_name``); nothing in the children
    needs it, as they run functions of importable modules."""
    main_module = sys.modules.get("__main__")
    if main_module is not None and getattr(main_module, "__spec__", None) is None:
        main_module.__spec__ = importlib.machinery.ModuleSpec("apexverify.cli.__main__", None)


def main(argv: Sequence[str] | None = None) -> int:
    _light_main_module()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.env_file:
        # Through the environment: every Settings.from_env of this process (and of the
        # worker processes of serve --workers) reads it.
        os.environ["APEXVERIFY_ENV_FILE"] = args.env_file
    try:
        admin.require_database_for(args)
        code = args.handler(args)
    except ApexError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except ConfigurationError as exc:
        # Before anything was served or launched: the message names the setting to fix.
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
