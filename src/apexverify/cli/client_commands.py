"""Client subcommands (talk to a server over HTTP). Extended by the SDK work."""

from __future__ import annotations

import argparse
import json
import os

import httpx


def add_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=os.environ.get("APEXVERIFY_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--api-key", default=os.environ.get("APEXVERIFY_API_KEY"))
    parser.add_argument("--json", action="store_true")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Client commands other than ``credits`` (registered by the admin module)."""


def show_credits(args: argparse.Namespace) -> int:
    response = httpx.get(
        f"{args.url}/v1/account/credits", headers={"X-API-Key": args.api_key or ""}
    )
    print(json.dumps(response.json()))
    return 0 if response.status_code == 200 else 1
