"""An in-memory overlay for tests of what runs above sessions (relay, gateway):
nodes' sessions and record datagrams carried in one event loop, with no
sockets and no routers.

A datagram for a key is delivered as the snake delivers it: to the node with
the lowest key at or above it, or, if no key is above it, to the highest node.
Session datagrams reach only the node that has the key itself.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from relay.client import RelayClient, RelayClientSettings
from relay.protocol import ALPN as RELAY_ALPN
from relay.records import PREFIX as RECORD_PREFIX
from relay.service import RelayLimits, RelayService
from relay.stores import open_store
from router.sessions.runtime import Sessions
from router.wire.keys import Identity


@dataclass
class MemoryNode:
    identity: Identity
    sessions: Sessions
    client: RelayClient | None = None
    service: RelayService | None = None

    @property
    def key(self) -> bytes:
        return bytes(self.identity.public_key)


@dataclass
class MemoryOverlay:
    data_dir: Path
    nodes: dict[bytes, MemoryNode] = field(default_factory=dict)
    offline: set[bytes] = field(default_factory=set)

    def _target(self, destination: bytes) -> MemoryNode | None:
        keys = sorted(k for k in self.nodes if k not in self.offline)
        if not keys:
            return None
        above = [k for k in keys if k >= destination]
        return self.nodes[above[0] if above else keys[-1]]

    def _sender(self, source: bytes) -> object:
        def send(destination: bytes, payload: bytes) -> None:
            if source in self.offline:
                return
            target = self._target(destination)
            if target is None:
                return
            loop = asyncio.get_running_loop()
            if payload.startswith(RECORD_PREFIX):
                if target.client is not None:
                    loop.call_soon(target.client.datagram, source, destination, payload)
            elif target.key == destination:
                loop.call_soon(target.sessions.datagram, source, payload)

        return send

    def add(self, identity: Identity | None = None) -> MemoryNode:
        identity = identity or Identity.generate()
        key = bytes(identity.public_key)
        sessions = Sessions(identity, ["matrix", RELAY_ALPN], self._sender(key))  # type: ignore[arg-type]
        node = MemoryNode(identity, sessions)
        self.nodes[key] = node
        return node

    def with_client(self, node: MemoryNode, settings: RelayClientSettings) -> RelayClient:
        send = self._sender(node.key)
        node.client = RelayClient(
            node.identity,
            node.sessions,
            send,  # type: ignore[arg-type]
            self.data_dir / node.key.hex()[:12],
            settings,
            is_highest=lambda: node.key == max(self.nodes),
        )
        return node.client

    async def with_service(self, node: MemoryNode, limits: RelayLimits | None = None) -> RelayService:
        store = open_store(f"sqlite:///{self.data_dir / (node.key.hex()[:12] + '-store.db')}")
        await store.open()
        node.service = RelayService(node.identity, store, node.sessions, limits or RelayLimits())
        node.sessions.listen(RELAY_ALPN, node.service.handle)
        return node.service

    async def close(self) -> None:
        for node in self.nodes.values():
            if node.client is not None:
                await node.client.stop()
            if node.service is not None:
                await node.service.store.close()
            await node.sessions.close()
