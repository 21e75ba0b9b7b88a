"""A minimal SOCKS5 proxy (RFC 1928, no authentication, CONNECT only) for loopback tests.

async with socks5_proxy() as proxy:
    settings = lab.settings(smtp_socks5_proxy=proxy.url)
    ...
    assert proxy.connections == [("127.0.0.2", lab.smtp_port)]
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class Socks5Proxy:
    host: str = "127.0.0.1"
    port: int = 0
    connections: list[tuple[str, int]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"socks5://{self.host}:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            version, count = await reader.readexactly(2)
            await reader.readexactly(count)
            if version != 5:
                return
            writer.write(b"\x05\x00")  # no authentication
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
            try:
                up_reader, up_writer = await asyncio.open_connection(host, port)
            except OSError:
                writer.write(b"\x05\x05\x00\x01" + bytes(6))  # connection refused
                return
            self.connections.append((host, port))
            writer.write(b"\x05\x00\x00\x01" + bytes(6))
            await asyncio.gather(
                _pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True
            )
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(OSError):
            writer.close()


@asynccontextmanager
async def socks5_proxy() -> AsyncIterator[Socks5Proxy]:
    proxy = Socks5Proxy()
    server = await asyncio.start_server(proxy.handle, proxy.host, 0)
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        server.close()
