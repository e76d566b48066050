"""The gateway a node runs for its homeserver: the proxy out, the reverse proxy in."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from router.gateway.shares import ShareLimits
from router.matrix.federation import ALPN as MATRIX_ALPN
from router.matrix.federation import DEFAULT_PATHS
from router.matrix.names import server_name

if TYPE_CHECKING:
    from relay.client import RelayClient
    from router.gateway.ca import LocalCA
    from router.gateway.inbound import InboundGateway
    from router.gateway.outbound import OutboundProxy
    from router.sessions.runtime import Sessions

# The proxy out (with its certificate authority) and the reverse proxy in are
# loaded only by a node configured to run them.


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """What the gateway is told of the node's configuration."""

    key: bytes
    server_name_suffix: str
    ca_dir: Path
    listen: tuple[str, int] | None
    """Where the proxy for the homeserver's outbound federation listens (None: no proxy)."""
    homeserver: tuple[str, int] | None
    """The homeserver's plain-HTTP federation listener (None: no inbound federation)."""
    homeserver_url: str
    session_timeout: float
    idle_timeout: float
    max_streams: int
    limits: ShareLimits = field(default_factory=ShareLimits)
    """Each node's share of the inbound gateway (``max_streams`` is the total)."""
    federation_paths: tuple[str, ...] = DEFAULT_PATHS
    """Path prefixes inbound requests may have to reach the homeserver."""
    ca_export: Path | None = None
    """Where to write a world-readable copy of the CA certificate for the homeserver
    (None: none; the homeserver reads the CA's own file in ``ca_dir``)."""


class Gateway:
    """What a node runs for its homeserver, as configured."""

    def __init__(
        self, settings: GatewaySettings, sessions: Sessions, relay_client: RelayClient | None = None
    ) -> None:
        self.settings = settings
        self.server_name = server_name(settings.key, settings.server_name_suffix)
        self.ca: LocalCA | None = None
        self.outbound: OutboundProxy | None = None
        self.inbound: InboundGateway | None = None
        if settings.listen is not None:
            from router.gateway.ca import LocalCA  # noqa: PLC0415
            from router.gateway.outbound import OutboundProxy, OutboundSettings  # noqa: PLC0415

            self.ca = LocalCA(settings.ca_dir, label=self.server_name[:12])
            self.outbound = OutboundProxy(
                sessions,
                self.ca,
                OutboundSettings(
                    settings.server_name_suffix, settings.session_timeout, settings.idle_timeout
                ),
                relay_client,
            )
        if settings.homeserver is not None:
            from router.gateway.inbound import InboundGateway, InboundSettings  # noqa: PLC0415

            host, port = settings.homeserver
            self.inbound = InboundGateway(
                InboundSettings(
                    host,
                    port,
                    settings.idle_timeout,
                    settings.federation_paths,
                    settings.server_name_suffix,
                    replace(settings.limits, max_streams=settings.max_streams),
                )
            )
            sessions.listen(MATRIX_ALPN, self.inbound.handle)

    @property
    def serves_homeserver(self) -> bool:
        """Whether the proxy out or the reverse proxy in is configured."""
        return self.outbound is not None or self.inbound is not None

    def export_ca(self) -> None:
        """Write the copy of the CA certificate that ``ca_export`` names, if it names
        one and the proxy is on (:class:`~router.gateway.ca.CAError` if it cannot)."""
        if self.ca is not None and self.settings.ca_export is not None:
            from router.gateway.ca import export_certificate  # noqa: PLC0415

            export_certificate(self.ca.certificate, self.settings.ca_export)

    async def start(self) -> None:
        if self.outbound is not None and self.settings.listen is not None:
            await self.outbound.start(*self.settings.listen)

    def close(self) -> None:
        if self.outbound is not None:
            self.outbound.close()

    @property
    def ca_certificate(self) -> Path | None:
        """The CA certificate file the homeserver is to trust (None: no proxy, no CA)."""
        if self.ca is None:
            return None
        return self.settings.ca_export or self.ca.cert_path

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "server_name": self.server_name,
            "hex_server_name": self.settings.key.hex(),
        }
        if self.outbound is not None and self.ca is not None:
            address = self.outbound.address
            out["proxy"] = f"{address[0]}:{address[1]}" if address else None
            out["ca_certificate"] = str(self.ca_certificate)
            out["proxy_connections"] = self.outbound.clients.active
            out["proxy_idle_connections_closed"] = self.outbound.clients.evicted
            out["proxy_counters"] = dict(self.outbound.counters)
        if self.inbound is not None:
            out["homeserver"] = self.settings.homeserver_url
            out["inbound_streams"] = self.inbound.active
            out["inbound_counters"] = dict(self.inbound.counters)
            out["inbound_busiest_node_requests"] = {
                "in_1s": self.inbound.shares.peak_1s,
                "in_10s": self.inbound.shares.peak_10s,
            }
        return out
