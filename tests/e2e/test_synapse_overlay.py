"""Two real Synapse homeservers federating over the overlay.

Three Pinewood routers in a line, a -- m -- b, as real processes.  Synapse A
sits beside router a, Synapse B beside router b; each is named after its
router's key (the base32 server name), sends federation through its router's
gateway (``https_proxy``, trusting the gateway's CA) and receives federation
from it on a plain-HTTP federation listener.  Router m only forwards: it sees
sessions' encrypted datagrams and nothing else.  Alice on A creates a room and
invites Bob on B, who joins; messages sent on each side arrive on the other,
checked through Synapse's client API.
"""

from __future__ import annotations

from pathlib import Path

from bench.daemons import DaemonNet
from tests.e2e.line import inbound_refusals, start_gateway_line
from tests.e2e.synapse import Homeserver, free_port


def test_synapse_homeservers_federate_over_the_overlay(synapse_python: Path, tmp_path: Path) -> None:
    net = DaemonNet(tmp_path / "routers")
    try:
        line = start_gateway_line(net)
        names, ca, federation = line.names, line.ca, line.federation
        servers = {
            side: Homeserver(
                synapse_python,
                names[side],
                tmp_path / f"synapse-{side}",
                federation_port=federation[side],
                client_port=free_port(),
                proxy_url=line.proxy_url(side),
                ca_pem=ca[side],
            )
            for side in ("a", "b")
        }
        with servers["a"] as hs_a, servers["b"] as hs_b:
            try:
                alice = hs_a.register_user("alice")
                bob = hs_b.register_user("bob")
                room = alice.create_room(name="over the overlay")
                alice.invite(room, bob.user_id)
                bob.wait_for_invite(room, timeout=90)
                assert bob.join(room, via=[names["a"]]) == room
                alice.send_text(room, "hello from A, by key")
                bob.wait_for_message(room, "hello from A, by key", timeout=60, sender=alice.user_id)
                bob.send_text(room, "and hello back from B")
                alice.wait_for_message(room, "and hello back from B", timeout=60, sender=bob.user_id)
            except BaseException:
                print(hs_a.diagnostics(), hs_b.diagnostics())
                for side in ("a", "m", "b"):
                    print(side, net.log(net.daemons[side]))
                raise
        # Federation went through sessions both ways, and m carried them.
        for side, other in (("a", "b"), ("b", "a")):
            gateway = net.daemons[side].api("GET", "/gateway")
            assert gateway["proxy_counters"]["tunnels opened"] >= 1
            assert gateway["inbound_counters"]["streams served"] >= 1
            # Nothing Synapse sent was refused by the inbound gateway.
            assert inbound_refusals(gateway) == {}, gateway["inbound_counters"]
            print(side, "busiest node's requests", gateway["inbound_busiest_node_requests"])
            sessions = net.daemons[side].api("GET", "/sessions")["sessions"]
            assert any(s["key"] == net.daemons[other].key and s["protocol"] == "matrix" for s in sessions)
        assert net.daemons["m"].api("GET", "/status")["traffic"]["forwarded"] > 0
    finally:
        net.stop_all()
