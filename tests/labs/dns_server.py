"""A tiny authoritative DNS server for tests: dnslib, UDP and TCP on 127.0.0.1, free port.

The zone is data (BIND-style text, one record per line, absolute names)::

    with LabDnsServer('''
        rejects.lab-example.com. 300 IN MX 10 mx.rejects.lab-example.com.
        mx.rejects.lab-example.com. 300 IN A 127.0.0.2
    ''', servfail={"broken.lab-example.com"}) as dns_server:
        settings = Settings(dns_nameservers=[dns_server.nameserver])

Answers: matching records (CNAMEs included); NOERROR with no answer when the name exists with
other types or has names below it; NXDOMAIN otherwise; SERVFAIL for names in ``servfail``.

The default DNS canaries of the engine (``Settings().dns_canaries``: gmail.com, outlook.com,
yahoo.com) always resolve: the lab adds an MX for each one the zone does not define itself
(pointing at :data:`CANARY_ADDRESS`, a documentation address no test connects to), so the
engine's environment health sees an honest resolver.

``dns_server.lying = True`` (thread-safe, at any time) turns it into a firewalled or
split-horizon resolver: NXDOMAIN for every name, canaries included, until set back.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable
from types import TracebackType

from dnslib import QTYPE, RCODE, RR, DNSLabel, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

from apexverify.settings import Settings

# TEST-NET-1 (RFC 5737): routable nowhere, refused by the engine's safety check by default.
CANARY_ADDRESS = "192.0.2.25"


def canary_zone(zone: str, canaries: Iterable[str]) -> str:
    """``zone`` plus an MX (and its A record) for every canary name it does not define."""
    defined = {rr.rname for rr in RR.fromZone(zone)} if zone.strip() else set()
    lines = [zone.rstrip("\n")] if zone.strip() else []
    for name in canaries:
        if DNSLabel(name + ".") not in defined:
            lines.append(f"{name}. 300 IN MX 10 mx.{name}.")
            lines.append(f"mx.{name}. 300 IN A {CANARY_ADDRESS}")
    return "\n".join(lines) + "\n"


class _QuietLogger(DNSLogger):
    def __init__(self) -> None:
        super().__init__(log="-request,-reply,-truncated,-error,-recv,-send,-data")


class ZoneResolver(BaseResolver):  # type: ignore[misc]
    def __init__(
        self,
        zone: str,
        servfail: Iterable[str] = (),
        canaries: Iterable[str] | None = None,
    ) -> None:
        names = Settings().dns_canaries if canaries is None else canaries
        self.records: list[RR] = RR.fromZone(canary_zone(zone, names))
        # Index by owner name: the benchmark zone has thousands of names.
        self.by_name: dict[DNSLabel, list[RR]] = {}
        for rr in self.records:
            self.by_name.setdefault(rr.rname, []).append(rr)
        self.servfail = {DNSLabel(name.rstrip(".") + ".") for name in servfail}
        self.queries: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._lying = threading.Event()

    @property
    def lying(self) -> bool:
        return self._lying.is_set()

    @lying.setter
    def lying(self, on: bool) -> None:
        if on:
            self._lying.set()
        else:
            self._lying.clear()

    def _exists(self, name: DNSLabel) -> bool:
        return name in self.by_name or any(rr.rname.matchSuffix(name) for rr in self.records)

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        qname, qtype = request.q.qname, request.q.qtype
        with self._lock:
            self.queries.append((str(qname), QTYPE[qtype]))
        if self.lying:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if qname in self.servfail:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        for rr in self.by_name.get(qname, ()):
            if qtype in (rr.rtype, QTYPE.ANY) or rr.rtype == QTYPE.CNAME:
                reply.add_answer(rr)
        if not reply.rr and not self._exists(qname):
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


def _free_port() -> int:
    # The same port number must be free for UDP and TCP; ask TCP, then bind UDP to it too.
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port for the lab DNS server")


class LabDnsServer:
    """UDP+TCP DNS server on ``127.0.0.1:<port>`` answering ``zone``; start/stop or ``with``."""

    def __init__(
        self, zone: str, servfail: Iterable[str] = (), canaries: Iterable[str] | None = None
    ) -> None:
        self.resolver = ZoneResolver(zone, servfail, canaries)
        self.port = 0
        self._servers: list[DNSServer] = []

    @property
    def lying(self) -> bool:
        """NXDOMAIN for every name while true (a resolver that lies); settable any time."""
        return self.resolver.lying

    @lying.setter
    def lying(self, on: bool) -> None:
        self.resolver.lying = on

    @property
    def nameserver(self) -> str:
        """The ``host:port`` form used by ``Settings.dns_nameservers``."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> LabDnsServer:
        for attempt in range(5):
            port = _free_port()
            try:
                udp = DNSServer(self.resolver, "127.0.0.1", port, logger=_QuietLogger())
                tcp = DNSServer(self.resolver, "127.0.0.1", port, tcp=True, logger=_QuietLogger())
            except OSError:
                if attempt == 4:
                    raise
                continue
            self.port = port
            self._servers = [udp, tcp]
            break
        for server in self._servers:
            # A short poll interval makes stop() (socketserver.shutdown) return quickly.
            thread = threading.Thread(
                target=server.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
            )
            thread.start()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.stop()
            server.server.server_close()
        self._servers = []

    def __enter__(self) -> LabDnsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
