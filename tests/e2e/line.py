"""Three routers in a line, a -- m -- b, as real processes: a and b each run
the gateway for a homeserver beside it, m only forwards.  The homeserver
tests (Synapse with Synapse, Dendrite and tuwunel) start their servers on
the ports this hands out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.daemons import DaemonNet, free_port
from tests.e2e.synapse import Homeserver

SIDES = ("a", "b")


@dataclass(frozen=True, slots=True)
class GatewayLine:
    net: DaemonNet
    federation: dict[str, int]
    """The port each side's homeserver serves federation on (its router's ``homeserver``)."""
    proxies: dict[str, int]
    """The port of each side's federation proxy."""
    names: dict[str, str]
    """Each side's server name (base32, from its router's key)."""
    ca: dict[str, Path]
    """The CA certificate each side's homeserver is to trust."""

    def proxy_url(self, side: str) -> str:
        return f"http://127.0.0.1:{self.proxies[side]}"


def start_gateway_line(net: DaemonNet) -> GatewayLine:
    """Start m, then a and b peered with it and their gateways on; wait until converged."""
    federation = {side: free_port() for side in SIDES}
    proxies = {side: free_port() for side in SIDES}
    net.start(["m"], [])
    for side in SIDES:
        net.start(
            [side],
            [(side, "m")],
            extra=[
                f"--gateway-listen=127.0.0.1:{proxies[side]}",
                f"--homeserver=http://127.0.0.1:{federation[side]}",
            ],
        )
    net.wait_converged()
    gateways = {side: net.daemons[side].api("GET", "/gateway") for side in SIDES}
    return GatewayLine(
        net,
        federation,
        proxies,
        {side: str(gateways[side]["server_name"]) for side in SIDES},
        {side: Path(gateways[side]["ca_certificate"]) for side in SIDES},
    )


def synapse_beside_a(line: GatewayLine, synapse_python: Path, directory: Path) -> Homeserver:
    """Synapse as side a's homeserver: federation on a's gateway, out through a's proxy."""
    return Homeserver(
        synapse_python,
        line.names["a"],
        directory,
        federation_port=line.federation["a"],
        client_port=free_port(),
        proxy_url=line.proxy_url("a"),
        ca_pem=line.ca["a"],
    )


def inbound_refusals(gateway: dict[str, Any]) -> dict[str, int]:
    """The inbound gateway's refusal counters, from ``GET /gateway``."""
    return {k: v for k, v in gateway["inbound_counters"].items() if k.startswith("refused")}
