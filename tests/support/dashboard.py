"""A browser-like HTTP client for the dashboard: cookies kept, CSRF tokens read from pages."""

from __future__ import annotations

import re

import httpx

from tests.support.server import LiveServer

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def browser_client(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, follow_redirects=False, timeout=15)


def csrf(client: httpx.Client, path: str = "/signin") -> str:
    found = TOKEN.search(client.get(path).text)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def signed_in(server: LiveServer, api_key: str) -> httpx.Client:
    client = browser_client(server)
    answer = client.post(
        "/signin", data={"api_key": api_key, "next": "/", "csrf_token": csrf(client)}
    )
    assert answer.status_code == 303, answer.text
    return client


def upload(client: httpx.Client, content: bytes, **fields: str) -> httpx.Response:
    data = {
        "csrf_token": csrf(client, "/batches/new"),
        "name": "list",
        "type": "email",
        "target_country": "US",
        "remove_duplicate": "true",
        **fields,
    }
    return client.post(
        "/batches/new", data=data, files={"file": ("list.txt", content, "text/plain")}
    )
