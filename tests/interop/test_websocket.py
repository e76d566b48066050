"""WebSocket peerings between Go reference routers and Pinewood, both ways.

p1 listens for WebSocket peerings and the Go node g dials it; g listens too and
p2 dials g.  Both of p2's and p1's paths to each other run over the two
WebSocket peerings, through g.
"""

from __future__ import annotations

from urllib.parse import quote

from bench.daemons import wait_until
from tests.interop.mixed import MixedNet
from tests.interop.test_mixed_line import ping_counts


def test_websocket_peerings_both_ways(mixed: MixedNet) -> None:
    mixed.plan_pinewood("p1", ws=True)
    mixed.start_pinewood("p1")
    g = mixed.start_go("g", ws=True, peers=[mixed.pinewood_uri("p1", "ws")])
    mixed.plan_pinewood("p2")
    mixed.start_pinewood("p2", peers=[g.ws_uri])
    mixed.order = ["p1", "g", "p2"]
    mixed.wait_converged(timeout=30)

    # Every peering of this network is a WebSocket one, on both ends.
    for name in ("p1", "p2"):
        peers = mixed.pinewood.daemons[name].api("GET", "/peers")
        assert [(p["key"], p["link_type"]) for p in peers] == [(g.key, "ws")], (name, peers)
    go_peers = {p["key"]: p for p in g.status()["peers"]}
    assert set(go_peers) == {mixed.key("p1"), mixed.key("p2")}
    assert go_peers[mixed.key("p1")]["uri"] == mixed.pinewood_uri("p1", "ws")
    assert go_peers[mixed.key("p2")]["zone"] == "ws-in"

    # Traffic over them: across g both ways, and to and from g itself.
    for source, target in (("p1", "p2"), ("p2", "p1"), ("p1", "g"), ("p2", "g")):
        result = mixed.pinewood_ping(source, mixed.key(target), count=3)
        assert ping_counts(result.stdout) == (3, 3), (source, target, result.stdout)
    for target in ("p1", "p2"):
        assert g.ping(mixed.key(target), count=3)["answered"] == 3, target


def test_two_peerings_between_the_same_go_and_pinewood_nodes(mixed: MixedNet) -> None:
    """p dials g over TCP and g dials p over WebSocket: two ports on each side for
    one key.  The tree uses one of them and traffic flows; when p drops its TCP
    peering, the other one carries on."""
    mixed.plan_pinewood("p", ws=True)
    p = mixed.pinewood.daemons["p"]
    g = mixed.start_go("g", peers=[mixed.pinewood_uri("p", "ws")])
    mixed.start_pinewood("p", peers=[g.tcp_uri])
    mixed.order = ["g", "p"]

    def both_peerings() -> bool:
        return len(p.api("GET", "/peers")) == 2 and len(g.status()["peers"]) == 2

    wait_until(both_peerings, 20, "two peerings between g and p")
    mixed.wait_converged(timeout=20)
    assert sorted(x["link_type"] for x in p.api("GET", "/peers")) == ["tcp", "ws"]
    assert ping_counts(mixed.pinewood_ping("p", g.key, count=3).stdout) == (3, 3)
    assert g.ping(p.key, count=3)["answered"] == 3

    p.api("DELETE", f"/peers?uri={quote(g.tcp_uri, safe='')}")
    wait_until(lambda: len(g.status()["peers"]) == 1, 20, "g down to one peering")
    assert [x["link_type"] for x in p.api("GET", "/peers")] == ["ws"]
    mixed.wait_converged(timeout=20)
    assert ping_counts(mixed.pinewood_ping("p", g.key, count=3).stdout) == (3, 3)
    assert g.ping(p.key, count=3)["answered"] == 3
