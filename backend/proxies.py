"""The client address behind trusted reverse proxies (``GONGPING_TRUSTED_PROXIES``).

``X-Forwarded-For`` is written by whoever sends the request, so only the hops appended by proxies we trust are
believed: the header is read right to left, trusted hops are skipped and the first untrusted address is the
client. A peer that is not a trusted proxy is the client itself, whatever its header says.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.requests import Request

from backend.config import IPNetwork, get_settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> IPAddress | None:
    """An address from a header entry or a peer ("1.2.3.4", "1.2.3.4:80", "::1", "[::1]:80"); None if malformed."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; compare them as the IPv4 they are.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress, proxies: Iterable[IPNetwork]) -> bool:
    return any(address in network for network in proxies)


def forwarded_client(peer: str, forwarded_for: Sequence[str], proxies: Sequence[IPNetwork]) -> str:
    """The client of a request from ``peer`` carrying these X-Forwarded-For header values."""
    peer_address = _address(peer)
    if peer_address is None or not proxies or not _trusted(peer_address, proxies):
        return peer
    entries = [entry for value in forwarded_for for entry in value.split(",")]
    hops: list[IPAddress] = []
    for entry in reversed(entries):
        address = _address(entry)
        if address is None:
            # A proxy we trust never writes this: the header is not believed at all.
            return str(peer_address)
        hops.append(address)
        if not _trusted(address, proxies):
            return str(address)
    # Every hop is a proxy of ours (or there is no header): the furthest one is as close to the client as known.
    return str(hops[-1]) if hops else str(peer_address)


def client_address(request: Request) -> str:
    """The caller's address: the peer, or what trusted proxies in front of us say the client was."""
    if request.client is None:
        return "unknown"
    proxies = get_settings().trusted_proxies
    return forwarded_client(request.client.host, request.headers.getlist("x-forwarded-for"), proxies)
