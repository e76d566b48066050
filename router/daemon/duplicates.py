"""One peering per neighbour and link, when both ends dialled at once.

Two nodes that hear each other's LAN beacons at the same moment, or that list
each other as static peers, each dial the other: each ends up with an inbound
and an outbound peering to the same neighbour over the same link, and both
stay (the reference keeps every connection).  Each costs keepalives and
announcements, and an operator sees two of everything.

Between two nodes that both announce the ``one-peering`` extension in their
handshakes, the peering dialled by the node with the lower key is kept and the
other is closed, by both ends: each end computes the same answer for the same
connection, so they never close opposite ones.  Peerings of different kinds
(TCP beside WebSocket) or over different interfaces are not duplicates and
stay, as the reference allows.  Two peerings found on the LAN are over the same
interface when our ends of both are addresses of one interface: a node beacons
from its IPv6 link-local address and its IPv4 one, so two nodes that dial each
other at once may do so one over each.  Other peerings are over the same link
when they join the same two addresses.  Nodes that do not announce the
extension, the reference among them, keep every peering they make.

Sans-I/O: the facts of each peering go in, the one to close comes out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PeeringFacts:
    """What decides whether two peerings are one too many."""

    ident: int
    """The caller's handle for the peering (its port, or any unique number)."""
    key: bytes
    """The neighbour's key."""
    outbound: bool
    """Whether this node dialled it."""
    kind: str
    """The link kind as operators see it: ``tcp``, ``tls``, ``ws``, ``quic``, ``multicast``."""
    local_host: str
    remote_host: str
    one_peering: bool
    """Whether both ends announced the extension."""
    interface: str | None = None
    """For a peering found on the LAN, the interface our end of it is on (None
    for any other, or where it cannot be told)."""


def normal_host(host: str) -> str:
    """An address as one form: brackets, zone and IPv4-mapped IPv6 removed."""
    host = host.strip("[]").split("%", 1)[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def dialler(facts: PeeringFacts, own_key: bytes) -> bytes:
    """The key of the node that dialled the peering."""
    return own_key if facts.outbound else facts.key


def same_link(a: PeeringFacts, b: PeeringFacts) -> bool:
    """Whether two peerings join the same two nodes over the same link, each
    dialled from a different end."""
    if a.key != b.key or a.outbound == b.outbound or a.kind != b.kind:
        return False
    if a.interface is not None and b.interface is not None:
        return a.interface == b.interface
    return normal_host(a.local_host) == normal_host(b.local_host) and normal_host(
        a.remote_host
    ) == normal_host(b.remote_host)


def duplicate_to_close(
    new: PeeringFacts, established: Iterable[PeeringFacts], own_key: bytes
) -> tuple[PeeringFacts, PeeringFacts] | None:
    """Of a new peering and the established ones, the one to close and the one
    it duplicates, which stays; None when the new one duplicates nothing."""
    if not new.one_peering:
        return None
    for old in established:
        if old.one_peering and same_link(new, old):
            # Keep the peering the lower key dialled; both ends agree which that is.
            return (new, old) if dialler(new, own_key) > dialler(old, own_key) else (old, new)
    return None
