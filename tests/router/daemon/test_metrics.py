"""The node's metrics as Prometheus reads them: every check parses the exposition
with prometheus_client's own parser, on a node with no sockets and on a real one."""

from __future__ import annotations

import urllib.request
from types import SimpleNamespace
from typing import cast

from prometheus_client import REGISTRY
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from bench.daemons import DaemonNet, wait_until
from router.daemon.admin.metrics import metrics_text
from router.daemon.node import Node
from router.http.connection_table import ConnectionTable
from router.links.peer import PeerLink
from router.wire.keys import PublicKey
from tests.router.daemon.test_admin import exchange, get, with_node


def families_of(text: str) -> dict[str, Metric]:
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert families, text
    return families


def value_of(family: Metric, **labels: str) -> float:
    [sample] = [s for s in family.samples if all(s.labels.get(k) == v for k, v in labels.items())]
    return sample.value


@with_node
async def test_metrics_parse_with_the_prometheus_parser(node: Node) -> None:
    status, headers, body = await exchange(node, ConnectionTable(4), get("/metrics"))
    assert status == 200 and headers["content-type"] == CONTENT_TYPE_LATEST
    families = families_of(body.decode())
    assert all(name.startswith("pinewood_") for name in families)
    assert families["pinewood_peers"].type == "gauge" and value_of(families["pinewood_peers"]) == 0
    assert value_of(families["pinewood_tree_depth"]) == 0  # alone, it is its own root
    assert value_of(families["pinewood_uptime_seconds"]) >= 0
    traffic = families["pinewood_traffic_frames"]  # the parser names a counter without _total
    assert traffic.type == "counter"
    assert {s.labels["action"] for s in traffic.samples} == {"forwarded", "delivered", "sent"}
    # Every counter's samples end in _total in the exposition.
    for family in families.values():
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), family
    assert "pinewood_relay_envelopes_stored" not in families  # not serving a relay


@with_node
async def test_a_label_value_with_a_newline_and_quotes_is_escaped(node: Node) -> None:
    reason = 'closed: peer said "no"\nthen \\ left'
    node.core.drops[reason] += 3
    text = metrics_text(node).decode()
    assert 'reason="closed: peer said \\"no\\"\\nthen \\\\ left"} 3.0' in text
    drops = families_of(text)["pinewood_drops"]
    assert value_of(drops, reason=reason) == 3


@with_node
async def test_per_peer_metrics_carry_port_key_and_link_type(node: Node) -> None:
    key = PublicKey(bytes(range(32)))
    link = SimpleNamespace(
        kind="quic",
        bytes_in=1000,
        bytes_out=2000,
        frames_in=10,
        frames_out=20,
        queue_depth=4,
        dropped=1,
        queue_wait_p50_s=0.002,
        queue_wait_p99_s=0.009,
    )
    node.links[7] = cast(PeerLink, link)
    node.core.peer_keys[7] = key
    families = families_of(metrics_text(node).decode())
    labels = {"port": "7", "key": key.hex(), "link_type": "quic"}
    assert value_of(families["pinewood_peers"]) == 1
    assert value_of(families["pinewood_peer_bytes_in"], **labels) == 1000
    assert value_of(families["pinewood_peer_bytes_out"], **labels) == 2000
    assert value_of(families["pinewood_peer_frames_in"], **labels) == 10
    assert value_of(families["pinewood_peer_frames_out"], **labels) == 20
    assert value_of(families["pinewood_peer_dropped"], **labels) == 1
    assert value_of(families["pinewood_peer_queue_wait_p50_seconds"], **labels) == 0.002
    assert value_of(families["pinewood_peer_queue_wait_p99_seconds"], **labels) == 0.009
    queue = families["pinewood_peer_queue_depth"]
    assert queue.type == "gauge" and value_of(queue, **labels) == 4


@with_node
async def test_the_global_registry_is_left_alone(node: Node) -> None:
    metrics_text(node)
    assert b"pinewood_" not in generate_latest(REGISTRY)


def test_a_live_node_serves_metrics_the_parser_reads(net: DaemonNet) -> None:
    net.start(["a"], [], extra=["--relay-enable"])
    net.start(["b"], [("b", "a")])
    a, b = net.daemons["a"], net.daemons["b"]
    wait_until(lambda: a.api("GET", "/status")["peers"] == 1, 20, "b peered with a")
    with urllib.request.urlopen(f"http://{a.admin}/metrics", timeout=5) as response:
        content_type = response.headers["Content-Type"]
        text = response.read().decode()
    assert content_type == CONTENT_TYPE_LATEST
    families = families_of(text)
    assert value_of(families["pinewood_peers"]) == 1
    assert value_of(families["pinewood_peer_frames_in"], key=b.key, link_type="tcp") > 0
    assert value_of(families["pinewood_relay_envelopes_stored"]) == 0  # serving, and empty
    # a's handshake-time announcement went out to b, by its frame type; traffic frames are not control.
    control = families["pinewood_control_bytes_out"]
    assert value_of(control, type="tree_announcement") > 0
    assert all(sample.labels["type"] != "traffic" for sample in control.samples)
    assert families["pinewood_relay_client_events"].type == "counter"
