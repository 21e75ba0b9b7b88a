"""A minimal SOCKS5 proxy (RFC 1928, CONNECT only; no authentication, or RFC 1929 user name
and password) for loopback tests.

async with socks5_proxy() as proxy:
    settings = lab.settings(smtp_socks5_proxy=proxy.url)
    ...
    assert proxy.connections == [("127.0.0.2", lab.smtp_port)]

What it records: ``greetings`` counts every client that sent a SOCKS5 greeting (a health
re-check greets and leaves), ``connections`` every destination it connected to (in order),
``refused`` every destination that refused it, ``auth_failures`` every wrong user name or
password. With ``socks5_proxy(username=..., password=...)`` it requires those credentials;
with ``stall="greeting"`` it accepts TCP and never answers (a hung proxy), with
``stall="connect"`` it greets and then never answers the CONNECT (a destination that does
not answer the proxy).
:func:`dead_proxy_port` is a loopback port where nothing listens (a dead proxy).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

Stall = Literal["", "greeting", "connect"]


@dataclass
class Socks5Proxy:
    host: str = "127.0.0.1"
    port: int = 0
    username: str | None = None
    password: str | None = None
    greetings: int = 0
    connections: list[tuple[str, int]] = field(default_factory=list)
    refused: list[tuple[str, int]] = field(default_factory=list)
    auth_failures: int = 0
    stall: Stall = ""

    @property
    def url(self) -> str:
        return f"socks5://{self.host}:{self.port}"

    @property
    def hosts(self) -> set[str]:
        """The destination addresses it carried."""
        return {host for host, _port in self.connections}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.stall == "greeting":
                await reader.read()  # until the client gives up
                return
            if not await self._negotiate(reader, writer):
                return
            _ver, command, _rsv, atyp = await reader.readexactly(4)
            if atyp == 1:
                host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
            elif atyp == 3:
                (length,) = await reader.readexactly(1)
                host = (await reader.readexactly(length)).decode()
            else:
                host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
            (port,) = struct.unpack("!H", await reader.readexactly(2))
            if command != 1:
                writer.write(b"\x05\x07\x00\x01" + bytes(6))  # command not supported
                return
            if self.stall == "connect":
                await reader.read()
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(host, port)
            except OSError:
                self.refused.append((host, port))
                writer.write(b"\x05\x05\x00\x01" + bytes(6))  # connection refused
                return
            self.connections.append((host, port))
            writer.write(b"\x05\x00\x00\x01" + bytes(6))
            await asyncio.gather(
                _pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True
            )
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            # A tunnel still open when the test's loop ends is cancelled: end quietly, since
            # Python 3.11's start_server logs a handler that ends cancelled as an error.
            pass
        finally:
            writer.close()

    async def _negotiate(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        version, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        if version != 5:
            return False
        self.greetings += 1
        if self.username is None:
            writer.write(b"\x05\x00")  # no authentication
            return True
        if 2 not in methods:
            writer.write(b"\x05\xff")  # no acceptable method
            return False
        writer.write(b"\x05\x02")
        _ver, length = await reader.readexactly(2)
        username = (await reader.readexactly(length)).decode()
        (length,) = await reader.readexactly(1)
        password = (await reader.readexactly(length)).decode()
        if (username, password) != (self.username, self.password):
            self.auth_failures += 1
            writer.write(b"\x01\x01")
            return False
        writer.write(b"\x01\x00")
        return True


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(OSError):
            writer.close()


@asynccontextmanager
async def socks5_proxy(
    *,
    username: str | None = None,
    password: str | None = None,
    port: int = 0,
    stall: Stall = "",
) -> AsyncIterator[Socks5Proxy]:
    proxy = Socks5Proxy(username=username, password=password, stall=stall)
    server = await asyncio.start_server(proxy.handle, proxy.host, port)
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        server.close()


def dead_proxy_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` where nothing listens (bound, then released: connections to it are
    refused until something else takes it, which the loopback tests do not)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
