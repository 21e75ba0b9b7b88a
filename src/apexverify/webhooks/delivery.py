"""One delivery attempt over HTTP.

The host is resolved and checked (``addresses.delivery_address``) and the connection goes to
that address, with the URL's host in ``Host`` and, for https, in the TLS SNI and certificate
check: what was checked is what is called. A short timeout bounds the whole attempt;
redirects are not followed (a 3xx is a failed attempt: the receiver's URL is the one
registered); the response body is never read. Any 2xx is a success.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import httpx

from .addresses import AddressRefused, Target, delivery_address

USER_AGENT = "ApexVerify-Webhooks/1"
_MAX_ERROR = 300


@dataclass(frozen=True)
class Attempt:
    """What one attempt gave: a 2xx (``ok``), another status, or an error without one."""

    ok: bool
    status_code: int | None = None
    error: str | None = None


def _pinned_url(target: Target, address: str) -> str:
    host = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    parts = target.parts
    path = parts.path or "/"
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{host}:{target.port}{path}{query}"


def _status_error(status: int) -> str | None:
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return f"HTTP {status}: redirects are not followed; register the final URL"
    return f"HTTP {status}"


async def attempt(
    target: Target,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout_seconds: float,
    allow_private: bool,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Attempt:
    """POST ``body`` to the endpoint once; never raises for network trouble."""
    try:
        address = await delivery_address(target, allow_private=allow_private)
    except AddressRefused as exc:
        return Attempt(False, error=f"refused: {exc}")
    except (OSError, UnicodeError) as exc:
        return Attempt(False, error=_short(f"{target.host} does not resolve: {exc}"))
    sent = {
        **headers,
        "Host": target.parts.netloc,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }
    extensions: dict[str, Any] = {}
    if target.parts.scheme == "https" and not target.is_ip:
        extensions["sni_hostname"] = target.host
    try:
        # No proxy from the environment: the connection must go to the address checked.
        async with httpx.AsyncClient(
            timeout=timeout_seconds, follow_redirects=False, trust_env=False, transport=transport
        ) as client:
            request = client.build_request(
                "POST",
                _pinned_url(target, address),
                content=body,
                headers=sent,
                extensions=extensions,
            )
            response = await client.send(request, stream=True)
            await response.aclose()  # the body is of no use; never read a large one
    except httpx.TimeoutException:
        return Attempt(False, error=f"timed out after {timeout_seconds:g} s")
    except httpx.HTTPError as exc:
        return Attempt(
            False, error=_short(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        )
    error = _status_error(response.status_code)
    return Attempt(error is None, response.status_code, error)


def _short(text: str) -> str:
    return text if len(text) <= _MAX_ERROR else text[:_MAX_ERROR] + "…"
