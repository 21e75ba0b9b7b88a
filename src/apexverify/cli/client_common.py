"""What every client command shares: the options, the SDK client, the one place that turns
SDK errors and bad input into a one-line message and an exit code (never a traceback).

Exit codes (also in docs/client.md):
0 success, 1 other error, 2 usage (a missing or unreadable file, no API key), 3 authentication,
4 insufficient credits, 5 not found, 6 batch ended in internal_error, 7 still rate-limited
after waiting, 8 launch declined, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from rich.console import Console

from ..client import (
    ApexVerifyError,
    AuthenticationError,
    BatchFailed,
    BatchStatus,
    Client,
    Declined,
    InsufficientCredits,
    NotFound,
    RateLimited,
)

KEY_VARIABLE = "APEXVERIFY_API_KEY"
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


class UsageError(Exception):
    """Bad input found before anything was sent (exit code 2); the message says what to do."""


def add_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None, help="server URL (env APEXVERIFY_URL)")
    parser.add_argument("--api-key", default=None, help=f"API key (env {KEY_VARIABLE})")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


class WatchingClient(Client):
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


def make_client(args: argparse.Namespace) -> WatchingClient:
    key = args.api_key or os.environ.get(KEY_VARIABLE)
    if not key:
        raise UsageError(
            f"no API key: set {KEY_VARIABLE} (or pass --api-key); "
            "create one with `apexverify key create` on the server"
        )
    return WatchingClient(key, args.url or os.environ.get("APEXVERIFY_URL"))


def _message(exc: ApexVerifyError, args: argparse.Namespace) -> str:
    if isinstance(exc, AuthenticationError):
        source = "--api-key" if getattr(args, "api_key", None) else KEY_VARIABLE
        return f"{exc} (the API key from {source} was refused)"
    return str(exc)


def guard(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Map SDK errors and bad input to the documented exit codes with a one-line message."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except KeyboardInterrupt:
            errors.print("interrupted")
            return 130
        except UsageError as exc:
            errors.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
            return 2
        except ValueError as exc:
            # The SDK checks arguments before sending (a bad --keep, an output extension).
            errors.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
            return 2
        except ApexVerifyError as exc:
            errors.print(
                f"error: {_message(exc, args)}", markup=False, highlight=False, soft_wrap=True
            )
            for cls, code in EXIT_CODES.items():
                if isinstance(exc, cls):
                    return code
            return 1
        except OSError as exc:
            # Writing an output (a full disk, a folder that does not exist).
            errors.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
            return 1

    return run
