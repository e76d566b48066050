"""The homeserver gateway: federation out through the overlay, and in from it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from router.config import parse_host_port
from router.gateway.ca import LocalCA
from router.gateway.inbound import InboundGateway
from router.gateway.names import server_name
from router.gateway.outbound import MATRIX_ALPN, OutboundProxy, OutboundSettings

if TYPE_CHECKING:
    from router.node import Node


class Gateway:
    """What a node runs for its homeserver, as configured."""

    def __init__(self, node: Node) -> None:
        config = node.config
        self.node = node
        self.server_name = server_name(bytes(node.identity.public_key), config.server_name_suffix)
        self.ca: LocalCA | None = None
        self.outbound: OutboundProxy | None = None
        self.inbound: InboundGateway | None = None
        if config.gateway_listen:
            self.ca = LocalCA(config.data_path / "gateway", label=self.server_name[:12])
            self.outbound = OutboundProxy(
                node.sessions,
                self.ca,
                OutboundSettings(
                    config.server_name_suffix, config.session_timeout, config.gateway_idle_timeout
                ),
                node.relay_client,
            )
        if config.homeserver:
            host, port = config.homeserver_address
            self.inbound = InboundGateway(host, port, config.gateway_max_streams, config.gateway_idle_timeout)
            node.sessions.listen(MATRIX_ALPN, self.inbound.handle)

    async def start(self) -> None:
        if self.outbound is not None:
            host, port = parse_host_port(self.node.config.gateway_listen, "gateway_listen")
            await self.outbound.start(host, port)

    def close(self) -> None:
        if self.outbound is not None:
            self.outbound.close()

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "server_name": self.server_name,
            "hex_server_name": self.node.identity.public_key.hex(),
        }
        if self.outbound is not None and self.ca is not None:
            address = self.outbound.address
            out["proxy"] = f"{address[0]}:{address[1]}" if address else None
            out["ca_certificate"] = str(self.ca.cert_path)
            out["proxy_connections"] = self.outbound.clients.active
            out["proxy_idle_connections_closed"] = self.outbound.clients.evicted
            out["proxy_counters"] = dict(self.outbound.counters)
        if self.inbound is not None:
            out["homeserver"] = self.node.config.homeserver
            out["inbound_streams"] = self.inbound.active
            out["inbound_counters"] = dict(self.inbound.counters)
        return out
