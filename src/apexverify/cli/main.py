"""The ``apexverify`` command: server administration and the API client in one CLI.

Server-side commands (``serve``, ``migrate``, ``worker``, ``account``, ``key``, ``credits add``)
live in :mod:`.admin`, ``cache`` in :mod:`.cache_commands`; they talk to the database
directly. Client commands (``verify``, ``batches``, ``credits`` without a subcommand,
``unit``) live in :mod:`.client_commands` and talk to a server over HTTP.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import ApexError, ConfigurationError
from . import admin, cache_commands, client_commands, webhook_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="apexverify", description="ApexVerify: verify email and phone lists."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    admin.register(sub)
    cache_commands.register(sub)
    webhook_commands.register(sub)
    client_commands.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
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
