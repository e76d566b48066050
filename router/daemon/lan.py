"""Peers found on the LAN: a beacon heard (:mod:`router.links.multicast`) is
dialled once at a time, held to the key it named, unless we already peer with it."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Callable, Collection

from router.daemon.duplicates import normal_host
from router.daemon.transports import Transports
from router.links.multicast import Discovery, ipv4_address, link_local_address
from router.logs import get_logger
from router.wire.keys import PublicKey

MAX_DISCOVERY_DIALS = 16

log = get_logger("pinewood")


class LanPeers:
    """Beacons on the allowed interfaces, and dials to the nodes they bring."""

    def __init__(
        self,
        key: PublicKey,
        transports: Transports,
        peer_keys: Callable[[], Collection[bytes]],
        counters: Counter[str],
    ) -> None:
        self.key = key
        self.transports = transports
        self.peer_keys = peer_keys
        """Keys we hold a peering with now."""
        self.counters = counters
        self.discovery: Discovery | None = None
        self.interfaces: list[str] = []
        self._dialling: set[tuple[str, int, int]] = set()
        self._dialling_keys: set[bytes] = set()

    async def start(self, interfaces: list[str]) -> None:
        self.interfaces = list(interfaces)
        port = await self.transports.listen_for_lan()
        self.discovery = Discovery(self.key, port, self._heard)
        await self.discovery.start(interfaces)

    def stop(self) -> None:
        if self.discovery is not None:
            self.discovery.stop()

    def interface_of(self, host: str, scope: int) -> str | None:
        """The allowed interface that our end of a LAN peering, ``host`` (with
        its IPv6 ``scope``, 0 if none), is on; None if it is none of them."""
        if scope:
            try:
                name = socket.if_indextoname(scope)
            except OSError:
                return None
            return name if name in self.interfaces else None
        address = normal_host(host)
        for name in self.interfaces:
            if address in (link_local_address(name), ipv4_address(name)):
                return name
        return None

    def _heard(self, key: bytes, port: int, host: str, scope: int) -> None:
        """A beacon: dial its sender unless it is us or we already peer with it."""
        target = (host, port, scope)
        if key == self.key or target in self._dialling or key in self._dialling_keys:
            return  # (a node beaconing over IPv6 and IPv4 is dialled once at a time)
        if key in self.peer_keys():
            return
        if len(self._dialling) >= MAX_DISCOVERY_DIALS:
            return
        self._dialling.add(target)
        self._dialling_keys.add(key)
        task = asyncio.get_running_loop().create_task(self._dial(key, host, port, scope))

        def done(_: object) -> None:
            self._dialling.discard(target)
            self._dialling_keys.discard(key)

        task.add_done_callback(done)

    async def _dial(self, key: bytes, host: str, port: int, scope: int) -> None:
        try:
            link = await self.transports.dial_lan(key, host, port, scope)
            if await link.established:
                self.counters["LAN peers discovered"] += 1
        except (OSError, TimeoutError) as exc:
            log.debug("discovered peer unreachable", host=host, port=port, error=str(exc))
