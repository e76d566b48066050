"""LAN discovery, compatible with the reference's multicast beacons.

Every 2 s, on each interface the operator allows, a node sends a UDP datagram of
``public key (32) | TCP port (u16 BE)`` to ``[ff02::114]:60606`` from its IPv6
link-local address; the port is a TCP listener of its own for discovered
peers.  A node that hears a key it has no peering with dials that port at the
sender's link-local address.  Peerings made this way have the reference's
"multicast" link type, which SNEK routing and flooding prefer over remote links.
Reference: ``multicast/multicast.go``.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from pathlib import Path

import structlog

GROUP = "ff02::114"
GROUP_PORT = 60606
BEACON_INTERVAL_S = 2.0
BEACON_SIZE = 34

log = structlog.get_logger("pinewood.multicast")


class DiscoveryError(Exception):
    """An allowed interface cannot be used for discovery."""


def link_local_address(interface: str, proc: Path = Path("/proc/net/if_inet6")) -> str | None:
    """The interface's IPv6 link-local address (Linux), or None."""
    try:
        lines = proc.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) == 6 and fields[5] == interface and fields[3] == "20":  # scope 0x20: link
            raw = bytes.fromhex(fields[0])
            return socket.inet_ntop(socket.AF_INET6, raw)
    return None


def parse_beacon(data: bytes) -> tuple[bytes, int] | None:
    """``(key, tcp port)`` from a beacon, or None if it is not one."""
    if len(data) < BEACON_SIZE:
        return None
    port = struct.unpack("!H", data[32:34])[0]
    return (bytes(data[:32]), port) if port else None


class BeaconProtocol(asyncio.DatagramProtocol):
    def __init__(self, heard: Callable[[bytes, int, str, int], None], scope: int) -> None:
        self.heard = heard
        self.scope = scope

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        beacon = parse_beacon(data)
        if beacon is None:
            return
        host = str(addr[0]).split("%")[0]
        scope = int(addr[3]) if len(addr) > 3 and addr[3] else self.scope
        self.heard(beacon[0], beacon[1], host, scope)


class Discovery:
    """Beacons out and in on the allowed interfaces."""

    def __init__(self, key: bytes, tcp_port: int, heard: Callable[[bytes, int, str, int], None]) -> None:
        self.key = key
        self.tcp_port = tcp_port
        self.heard = heard
        self.transports: list[tuple[asyncio.DatagramTransport, int]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self, interfaces: list[str]) -> None:
        loop = asyncio.get_running_loop()
        for name in interfaces:
            try:
                index = socket.if_nametoindex(name)
            except OSError:
                raise DiscoveryError(f"lan_interfaces: no interface named {name!r}") from None
            if link_local_address(name) is None:
                log.warning("no IPv6 link-local address; discovery off on this interface", interface=name)
                continue
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, name.encode())
            sock.bind(("::", GROUP_PORT))
            group = socket.inet_pton(socket.AF_INET6, GROUP) + struct.pack("@I", index)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            transport, _ = await loop.create_datagram_endpoint(
                lambda index=index: BeaconProtocol(self.heard, index),  # type: ignore[misc]
                sock=sock,
            )
            self.transports.append((transport, index))
            log.info("LAN discovery on", interface=name)
        if self.transports:
            self._task = loop.create_task(self._advertise())

    async def _advertise(self) -> None:
        beacon = self.key + struct.pack("!H", self.tcp_port)
        while True:
            for transport, index in self.transports:
                try:
                    transport.sendto(beacon, (GROUP, GROUP_PORT, 0, index))
                except OSError as exc:
                    log.debug("beacon not sent", error=str(exc))
            await asyncio.sleep(BEACON_INTERVAL_S)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for transport, _ in self.transports:
            transport.close()
