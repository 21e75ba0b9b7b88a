"""Which addresses the prober may connect to.

An MX record is data from whoever controls the domain: pointing it at 127.0.0.1, 10.0.0.5 or
169.254.169.254 would make the verifier probe our own network (SSRF). By default only
globally routable unicast addresses are allowed; ``smtp_allow_private_networks`` lifts the
rule for labs and intranets.
"""

from __future__ import annotations

import ipaddress


def refusal_reason(address: str, *, allow_private: bool) -> str | None:
    """Why connecting to ``address`` is refused, or ``None`` when it is allowed."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"not an IP address: {address!r}"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified or ip.is_multicast:
        return f"{ip} is {'unspecified' if ip.is_unspecified else 'multicast'}"
    if allow_private:
        return None
    for label, flag in (
        ("loopback", ip.is_loopback),
        ("private", ip.is_private),
        ("link-local", ip.is_link_local),
        ("reserved", ip.is_reserved),
    ):
        if flag:
            return f"{ip} is a {label} address"
    if not ip.is_global:
        return f"{ip} is not globally routable"
    return None
