"""The node's metrics, through prometheus_client.

Nothing is recorded as it happens: the node already counts everything, so a
:class:`NodeCollector` reads its counters when it is scraped and hands them to
prometheus_client as metric families, and the library writes the text format
(names, escaping, types).  Each scrape renders a registry of its own holding
one collector of one node; the library's global registry is never used, so
several nodes in one process keep their metrics apart.

Counters are named here without ``_total``: the library adds it in the
exposition, so every counter ends in ``_total`` there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from relay.stores.base import StoreStats
from router.daemon.admin.body import Body
from router.daemon.node import Node
from router.wire.extension import frame_type_name

PREFIX = "pinewood_"

__all__ = ["CONTENT_TYPE_LATEST", "NodeCollector", "metrics_text", "render_metrics"]


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, help_text, value=value)


def _counter_by(
    name: str, help_text: str, label: str, counts: Mapping[str, int | float]
) -> CounterMetricFamily:
    """One counter with a sample per entry of ``counts``, labelled by its key."""
    family = CounterMetricFamily(PREFIX + name, help_text, labels=[label])
    for key, value in sorted(counts.items()):
        family.add_metric([str(key)], value)
    return family


PEER_LABELS = ("port", "key", "link_type")
PEER_METRICS = (
    # name, kind, help, the attribute of a link it reads
    ("peer_bytes_in", "counter", "Bytes received from the peer.", "bytes_in"),
    ("peer_bytes_out", "counter", "Bytes sent to the peer.", "bytes_out"),
    ("peer_frames_in", "counter", "Frames received from the peer.", "frames_in"),
    ("peer_frames_out", "counter", "Frames sent to the peer.", "frames_out"),
    ("peer_queue_depth", "gauge", "Frames waiting to be sent to the peer.", "queue_depth"),
    ("peer_dropped", "counter", "Frames for the peer dropped from its queue.", "dropped"),
    (
        "peer_queue_wait_p50_seconds",
        "gauge",
        "Median wait of the latest traffic frames in the peer's queue.",
        "queue_wait_p50_s",
    ),
    (
        "peer_queue_wait_p99_seconds",
        "gauge",
        "99th percentile wait of the latest traffic frames in the peer's queue.",
        "queue_wait_p99_s",
    ),
)


class NodeCollector(Collector):
    """A node's counters as metric families, read at each scrape.

    ``relay_stats`` are the relay store's figures, read (asynchronously) just
    before the scrape; ``None`` when the node serves no relay.
    """

    def __init__(self, node: Node, relay_stats: StoreStats | None = None) -> None:
        self.node = node
        self.relay_stats = relay_stats

    def collect(self) -> Iterator[Metric]:
        yield from self._routing()
        yield from self._peers()
        yield from self._sessions_and_gateway()
        yield from self._relay()

    def _routing(self) -> Iterable[Metric]:
        node, core = self.node, self.node.core
        traffic = core.traffic
        yield _gauge("peers", "Established peerings.", len(node.links))
        yield _gauge("root_sequence", "Sequence of the current root announcement.", core.root()[1])
        yield _gauge("tree_depth", "Length of this node's coordinates.", len(core.coordinates()))
        yield _gauge("snake_routes", "Route entries in the snake table.", len(core.routes))
        yield _gauge("coords_cache_entries", "Entries in the coordinates cache.", len(traffic.coords_cache))
        yield _gauge("uptime_seconds", "Seconds since the node started.", node.loop.time() - node.started_at)
        yield _counter_by(
            "traffic_frames",
            "Traffic frames by what happened to them.",
            "action",
            {"forwarded": traffic.forwarded, "delivered": traffic.delivered, "sent": traffic.sent},
        )
        yield _counter_by(
            "drops",
            "Frames dropped and peerings closed by the routing core, by reason.",
            "reason",
            core.drops,
        )
        yield _counter_by(
            "routing_events",
            "What the routing core did: bootstraps, announcements, path notices and repairs, by kind.",
            "event",
            core.stats,
        )
        yield _counter_by("node_events", "Runtime events, by kind.", "event", node.counters)
        yield _counter_by(
            "control_bytes_out",
            "Bytes of protocol frames written to all peerings (keepalives, announcements, "
            "bootstraps, broadcasts, extension frames), by frame type.",
            "type",
            {frame_type_name(kind): count for kind, count in node.control_bytes_out.items()},
        )

    def _peers(self) -> Iterable[Metric]:
        node = self.node
        links = sorted(node.links.items())
        for name, kind, help_text, attribute in PEER_METRICS:
            family_type = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            family = family_type(PREFIX + name, help_text, labels=PEER_LABELS)
            for port, link in links:
                key = node.core.peer_keys.get(port, b"").hex()
                family.add_metric([str(port), key, link.kind], getattr(link, attribute))
            yield family

    def _sessions_and_gateway(self) -> Iterable[Metric]:
        sessions, gateway = self.node.sessions, self.node.gateway
        yield _gauge("sessions", "End-to-end sessions open.", len(sessions.open_sessions))
        events: dict[str, int | float] = dict(sessions.counters)
        events.update({f"dropped: {reason}": v for reason, v in sessions.drops.items()})
        yield _counter_by(
            "session_events",
            "Session events and datagrams dropped by the sessions layer, by kind.",
            "event",
            events,
        )
        family = CounterMetricFamily(
            PREFIX + "gateway_events", "Gateway events and bytes, by side.", labels=["side", "event"]
        )
        for side, counters in (
            ("outbound", gateway.outbound.counters if gateway.outbound else None),
            ("inbound", gateway.inbound.counters if gateway.inbound else None),
        ):
            for event, value in sorted((counters or {}).items()):
                family.add_metric([side, event], value)
        yield family

    def _relay(self) -> Iterable[Metric]:
        client, service, stats = self.node.relay_client, self.node.relay_service, self.relay_stats
        yield _counter_by(
            "relay_client_events",
            "This node's relay client: deposits, deliveries, lookups, by kind.",
            "event",
            client.counters,
        )
        yield _gauge(
            "relay_records_held", "Relay records this node keeps for others.", len(client.records.book)
        )
        if service is None or stats is None:
            return
        yield _gauge("relay_envelopes_stored", "Envelopes in the relay store.", stats.envelopes)
        yield _gauge("relay_bytes_stored", "Bytes of envelopes in the relay store.", stats.bytes)
        yield _gauge("relay_mailboxes", "Mailboxes in the relay store.", stats.mailboxes)
        yield _counter_by(
            "relay_events",
            "Relay service: requests served, envelopes stored, rejects by reason.",
            "event",
            service.counters,
        )


def metrics_text(node: Node, relay_stats: StoreStats | None = None) -> bytes:
    """The node's metrics in the Prometheus text format (:data:`CONTENT_TYPE_LATEST`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(node, relay_stats))
    return generate_latest(registry)


def render_metrics(node: Node, relay_stats: StoreStats | None = None) -> Body:
    """The answer to ``GET /metrics``: the exposition, with the library's content type."""
    return Body(CONTENT_TYPE_LATEST, metrics_text(node, relay_stats))
