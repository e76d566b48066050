"""LAN discovery, compatible with the reference's multicast beacons.

Every 2 s, on each interface the operator allows, a node sends a UDP datagram of
``public key (32) | TCP port (u16 BE)`` to ``[ff02::114]:60606`` from its IPv6
link-local address, and the same datagram to ``224.0.0.114:60606`` if the
interface has an IPv4 address; the port is a TCP listener of its own (both
families) for discovered peers.  A node that hears a key it has no peering with
dials that port at the address the beacon came from.  Peerings made this way
have the reference's "multicast" link type, which SNEK routing and flooding
prefer over remote links.  Reference: ``multicast/multicast.go``.
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
from collections.abc import Callable
from pathlib import Path

from router.links.errors import LinkError
from router.logs import get_logger

GROUP = "ff02::114"
GROUP_V4 = "224.0.0.114"
GROUP_PORT = 60606
SIOCGIFADDR = 0x8915
BEACON_INTERVAL_S = 2.0
BEACON_SIZE = 34

log = get_logger("pinewood.multicast")


class DiscoveryError(LinkError):
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


def ipv4_address(interface: str) -> str | None:
    """The interface's (first) IPv4 address (Linux), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            request = struct.pack("256s", interface.encode()[:15])
            answer = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, request)
        except OSError:
            return None
    return socket.inet_ntoa(answer[20:24])


def ipv4_membership(index: int) -> bytes:
    """An ``ip_mreqn`` for the IPv4 group on interface ``index``."""
    return socket.inet_aton(GROUP_V4) + socket.inet_aton("0.0.0.0") + struct.pack("@i", index)


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
        self.transports: list[tuple[asyncio.DatagramTransport, tuple[str | int, ...]]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self, interfaces: list[str]) -> None:
        loop = asyncio.get_running_loop()
        for name in interfaces:
            try:
                index = socket.if_nametoindex(name)
            except OSError:
                raise DiscoveryError(f"lan_interfaces: no interface named {name!r}") from None
            sockets: list[tuple[socket.socket, tuple[str | int, ...]]] = []
            if link_local_address(name) is not None:
                sockets.append((self._ipv6_socket(name, index), (GROUP, GROUP_PORT, 0, index)))
            if ipv4_address(name) is not None:
                sockets.append((self._ipv4_socket(name, index), (GROUP_V4, GROUP_PORT)))
            if not sockets:
                log.warning(
                    "no IPv6 link-local or IPv4 address; discovery off on this interface", interface=name
                )
                continue
            for sock, destination in sockets:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda index=index: BeaconProtocol(self.heard, index),  # type: ignore[misc]
                    sock=sock,
                )
                self.transports.append((transport, destination))
            log.info("LAN discovery on", interface=name, families=len(sockets))
        if self.transports:
            self._task = loop.create_task(self._advertise())

    @staticmethod
    def _bound(family: int, name: str, address: str) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, name.encode())
        sock.bind((address, GROUP_PORT))
        return sock

    def _ipv6_socket(self, name: str, index: int) -> socket.socket:
        sock = self._bound(socket.AF_INET6, name, "::")
        group = socket.inet_pton(socket.AF_INET6, GROUP) + struct.pack("@I", index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        return sock

    def _ipv4_socket(self, name: str, index: int) -> socket.socket:
        sock = self._bound(socket.AF_INET, name, "0.0.0.0")
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, ipv4_membership(index))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, ipv4_membership(index))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        return sock

    async def _advertise(self) -> None:
        beacon = self.key + struct.pack("!H", self.tcp_port)
        while True:
            for transport, destination in self.transports:
                try:
                    transport.sendto(beacon, destination)
                except OSError as exc:
                    log.debug("beacon not sent", error=str(exc))
            await asyncio.sleep(BEACON_INTERVAL_S)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for transport, _ in self.transports:
            transport.close()
