"""Who the client is, for rate limits and work slots: the TCP peer, or what a *configured* reverse proxy says.

``X-Forwarded-For`` is a list anyone can write. It is read only when the peer is one of the trusted proxies
(``PROVENANCE_API_TRUSTED_PROXIES``, default none), and then from the right: each hop a trusted proxy appended is
skipped, and the first address that is not a trusted proxy is the client. Addresses further left were written by
the client itself and are never believed. ``provenance serve`` runs uvicorn without its own proxy-header handling,
so the peer address the app sees is always the real socket peer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from provenance.errors import ConfigError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted_proxies(text: str) -> tuple[IPNetwork, ...]:
    """``"10.0.0.5, 192.168.0.0/24"`` -> networks; ``ConfigError`` naming a bad entry."""
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ConfigError(f"PROVENANCE_API_TRUSTED_PROXIES: {entry!r} is not an IP address or network "
                              f"({exc})") from None
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class ClientResolver:
    trusted: Sequence[IPNetwork] = ()

    def _is_trusted(self, address: str) -> bool:
        ip = _address(address)
        return ip is not None and any(ip in net for net in self.trusted)

    def resolve(self, peer: str | None, forwarded_for: Iterable[str] = ()) -> str:
        """The client address: ``peer`` unless it is a trusted proxy, then the right-most untrusted hop of the
        ``X-Forwarded-For`` values (all headers, in order)."""
        peer = peer or "unknown"
        if not self.trusted or not self._is_trusted(peer):
            return peer
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
        for hop in reversed(hops):
            if _address(hop) is None:
                return peer  # garbage in the chain: do not guess, bucket it under the proxy
            if not self._is_trusted(hop):
                return str(_address(hop))
        return peer
