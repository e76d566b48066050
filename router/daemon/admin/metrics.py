"""The node's metrics in Prometheus' text format."""

from __future__ import annotations

from relay.stores.base import StoreStats
from router.daemon.node import Node


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def render_metrics(node: Node, relay_stats: StoreStats | None = None) -> str:
    core = node.core
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP pinewood_{name} {help_text}")
        lines.append(f"# TYPE pinewood_{name} {kind}")
        for labels, value in samples:
            lines.append(f"pinewood_{name}{labels} {value}")

    metric("peers", "gauge", "Established peerings.", [("", len(node.links))])
    metric("root_sequence", "gauge", "Sequence of the current root announcement.", [("", core.root()[1])])
    metric("tree_depth", "gauge", "Length of this node's coordinates.", [("", len(core.coordinates()))])
    metric("snake_routes", "gauge", "Route entries in the snake table.", [("", len(core.routes))])
    metric(
        "coords_cache_entries",
        "gauge",
        "Entries in the coordinates cache.",
        [("", len(core.traffic.coords_cache))],
    )
    metric(
        "uptime_seconds",
        "gauge",
        "Seconds since the node started.",
        [("", node.loop.time() - node.started_at)],
    )
    traffic = core.traffic
    metric(
        "traffic_frames_total",
        "counter",
        "Traffic frames by what happened to them.",
        [
            ('{action="forwarded"}', traffic.forwarded),
            ('{action="delivered"}', traffic.delivered),
            ('{action="sent"}', traffic.sent),
        ],
    )
    metric(
        "drops_total",
        "counter",
        "Frames dropped and peerings closed by the routing core, by reason.",
        [(f'{{reason="{_label(r)}"}}', v) for r, v in sorted(core.drops.items())],
    )
    metric(
        "node_events_total",
        "counter",
        "Runtime events, by kind.",
        [(f'{{event="{_label(r)}"}}', v) for r, v in sorted(node.counters.items())],
    )
    per_peer: dict[str, list[tuple[str, float]]] = {
        "peer_bytes_in_total": [],
        "peer_bytes_out_total": [],
        "peer_frames_in_total": [],
        "peer_frames_out_total": [],
        "peer_queue_depth": [],
        "peer_dropped_total": [],
    }
    for port, link in sorted(node.links.items()):
        key = core.peer_keys.get(port, b"").hex()
        labels = f'{{port="{port}",key="{key}",link_type="{link.kind}"}}'
        per_peer["peer_bytes_in_total"].append((labels, link.bytes_in))
        per_peer["peer_bytes_out_total"].append((labels, link.bytes_out))
        per_peer["peer_frames_in_total"].append((labels, link.frames_in))
        per_peer["peer_frames_out_total"].append((labels, link.frames_out))
        per_peer["peer_queue_depth"].append((labels, link.queue_depth))
        per_peer["peer_dropped_total"].append((labels, link.dropped))
    for name, samples in per_peer.items():
        kind = "gauge" if name == "peer_queue_depth" else "counter"
        metric(name, kind, name.replace("_", " ").capitalize() + ".", samples)
    sessions = node.sessions
    metric("sessions", "gauge", "End-to-end sessions open.", [("", len(sessions.endpoint.sessions))])
    metric(
        "session_events_total",
        "counter",
        "Session events and datagrams dropped by the sessions layer, by kind.",
        [(f'{{event="{_label(r)}"}}', float(v)) for r, v in sorted(sessions.counters.items())]
        + [(f'{{event="dropped: {_label(r)}"}}', v) for r, v in sorted(sessions.endpoint.drops.items())],
    )
    gateway = node.gateway
    gateway_samples: list[tuple[str, float]] = []
    for side, counters in (
        ("outbound", gateway.outbound.counters if gateway.outbound else None),
        ("inbound", gateway.inbound.counters if gateway.inbound else None),
    ):
        if counters is not None:
            gateway_samples += [
                (f'{{side="{side}",event="{_label(r)}"}}', v) for r, v in sorted(counters.items())
            ]
    metric("gateway_events_total", "counter", "Gateway events and bytes, by side.", gateway_samples)
    client = node.relay_client
    metric(
        "relay_client_events_total",
        "counter",
        "This node's relay client: deposits, deliveries, lookups, by kind.",
        [(f'{{event="{_label(r)}"}}', float(v)) for r, v in sorted(client.counters.items())],
    )
    metric(
        "relay_records_held",
        "gauge",
        "Relay records this node keeps for others.",
        [("", len(client.records.book))],
    )
    service = node.relay_service
    if service is not None and relay_stats is not None:
        metric(
            "relay_envelopes_stored", "gauge", "Envelopes in the relay store.", [("", relay_stats.envelopes)]
        )
        metric(
            "relay_bytes_stored", "gauge", "Bytes of envelopes in the relay store.", [("", relay_stats.bytes)]
        )
        metric("relay_mailboxes", "gauge", "Mailboxes in the relay store.", [("", relay_stats.mailboxes)])
        metric(
            "relay_events_total",
            "counter",
            "Relay service: requests served, envelopes stored, rejects by reason.",
            [(f'{{event="{_label(r)}"}}', float(v)) for r, v in sorted(service.counters.items())],
        )
    return "\n".join(lines) + "\n"
