"""Which URLs a webhook may call.

A webhook URL is data from an account, like an MX record is data from a domain's owner: it
must not make the server call its own network (127.0.0.1, 10.0.0.5, the cloud metadata
address 169.254.169.254). The rule is the SMTP prober's (``verify/email/safety.py``): only
globally routable unicast addresses, unless ``webhooks_allow_private_networks``. It is
applied to every address the host resolves to, when the endpoint is registered and again
before each attempt, and the attempt connects to the address that was checked (a name that
resolves elsewhere a moment later, DNS rebinding, changes nothing).

A name that does not resolve at registration is accepted (its DNS may not exist yet): its
deliveries fail, visibly in the log, and are retried until it does.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from ..verify.email.safety import refusal_reason
from .errors import InvalidEndpoint

MAX_URL_LENGTH = 2048
# RFC 3986's characters: anything else (spaces, controls, non-ASCII) is not a URI.
_URI_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


@dataclass(frozen=True)
class Target:
    """A checked URL: its parts, the host as written and the port it connects to."""

    url: str
    parts: SplitResult
    host: str
    port: int

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


class AddressRefused(Exception):
    """The host is, or resolves to, an address the guard refuses (the message says which)."""


def parse(url: str) -> Target:
    """The URL's parts; raises :class:`InvalidEndpoint` when it is no http(s) URL we call."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidEndpoint("url", f"The URL is longer than {MAX_URL_LENGTH} characters.")
    url = url.strip()
    if not _URI_CHARACTERS.fullmatch(url):
        raise InvalidEndpoint(
            "url", "The URL has characters a URL cannot hold (spaces, non-ASCII: encode them)."
        )
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InvalidEndpoint("url", "The URL is malformed.") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidEndpoint("url", "The URL must start with https:// or http://.")
    if not parts.hostname:
        raise InvalidEndpoint("url", "The URL has no host.")
    if not _valid_host(parts.hostname):
        raise InvalidEndpoint("url", f"The URL's host {parts.hostname!r} is not a host name.")
    if parts.username is not None or parts.password is not None:
        raise InvalidEndpoint("url", "The URL must not carry credentials (user:password@).")
    if parts.fragment:
        raise InvalidEndpoint("url", "The URL must not have a #fragment.")
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise InvalidEndpoint("url", "The URL's port must be a number from 1 to 65535.")
    if port is None:
        port = 443 if scheme == "https" else 80
    return Target(url=url, parts=parts._replace(scheme=scheme), host=parts.hostname, port=port)


def _valid_host(host: str) -> bool:
    """An IP address, or dot-separated DNS labels (a trailing dot allowed)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        labels = host.removesuffix(".").split(".")
        return all(_LABEL.fullmatch(label) for label in labels)
    return True


def refusal(addresses: list[str], *, allow_private: bool) -> str | None:
    """Why calling a host with these addresses is refused (the first refused one), or None."""
    for address in addresses:
        reason = refusal_reason(address, allow_private=allow_private)
        if reason is not None:
            return reason
    return None


def _addresses(infos: Sequence[tuple[object, ...]]) -> list[str]:
    found: list[str] = []
    for info in infos:
        sockaddr = info[4]
        assert isinstance(sockaddr, tuple)
        address = str(sockaddr[0]).split("%", 1)[0]  # an IPv6 scope id is not the address
        if address not in found:
            found.append(address)
    return found


def resolve(target: Target) -> list[str]:
    """Every address of the host (the host itself when it is an IP); raises OSError."""
    if target.is_ip:
        return [target.host]
    return _addresses(socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM))


async def resolve_async(target: Target) -> list[str]:
    if target.is_ip:
        return [target.host]
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    return _addresses(infos)


def check_registration(url: str, *, allow_private: bool) -> Target:
    """The URL, parsed and its addresses checked; raises :class:`InvalidEndpoint`."""
    target = parse(url)
    try:
        addresses = resolve(target)
    except (OSError, UnicodeError):
        return target  # not resolvable yet: checked again at each delivery
    reason = refusal(addresses, allow_private=allow_private)
    if reason is not None:
        raise InvalidEndpoint(
            "url",
            f"The URL's host {target.host} is refused: {reason}. Webhooks are only sent to "
            "public addresses (the server's operator can allow private networks with "
            "APEXVERIFY_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=true).",
        )
    return target


async def delivery_address(target: Target, *, allow_private: bool) -> str:
    """The address an attempt connects to; raises :class:`AddressRefused`, or OSError when
    the host does not resolve."""
    addresses = await resolve_async(target)
    if not addresses:
        raise OSError(f"{target.host} has no address")
    reason = refusal(addresses, allow_private=allow_private)
    if reason is not None:
        raise AddressRefused(f"{target.host} is refused: {reason}")
    return addresses[0]
