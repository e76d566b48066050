"""A real Synapse whose router is away still gets its federation, through a relay.

Routers h (hub), r (a relay), i (another relay), a and b, as real processes;
Synapse A behind a, Synapse B behind b, which keeps its mailbox on r.  Alice
(on A) and Bob (on B) share a room.  Router b stops; Alice sends a message,
which Synapse A sends as a federation transaction that a's gateway leaves on r
(through i).  Router b starts again, fetches its mailbox and replays the
transaction to Synapse B, where Bob sees the message.
"""

from __future__ import annotations

import signal
from pathlib import Path

from bench.daemons import DaemonNet, wait_until
from tests.e2e.synapse import Homeserver, free_port


def test_message_to_an_away_homeserver_arrives_through_a_relay(synapse_python: Path, tmp_path: Path) -> None:
    net = DaemonNet(tmp_path / "routers")
    federation = {"a": free_port(), "b": free_port()}
    proxies = {"a": free_port(), "b": free_port()}
    try:
        net.start(["h"], [])
        net.start(["i", "r"], [("i", "h"), ("r", "h")], extra=["--relay-enable"])
        relays = {"a": net.daemons["i"].key, "b": net.daemons["r"].key}
        args = {
            side: [
                f"--gateway-listen=127.0.0.1:{proxies[side]}",
                f"--homeserver=http://127.0.0.1:{federation[side]}",
                f"--relays={relays[side]}",
                "--relay-fetch-interval=2",
                "--session-timeout=3",
            ]
            for side in ("a", "b")
        }
        for side in ("a", "b"):
            net.start([side], [(side, "h")], extra=args[side])
        net.wait_converged()
        gateways = {side: net.daemons[side].api("GET", "/gateway") for side in ("a", "b")}
        servers = {
            side: Homeserver(
                synapse_python,
                gateways[side]["server_name"],
                tmp_path / f"synapse-{side}",
                federation_port=federation[side],
                client_port=free_port(),
                proxy_url=f"http://127.0.0.1:{proxies[side]}",
                ca_pem=Path(gateways[side]["ca_certificate"]),
            )
            for side in ("a", "b")
        }
        with servers["a"] as hs_a, servers["b"] as hs_b:
            try:
                alice = hs_a.register_user("alice")
                bob = hs_b.register_user("bob")
                room = alice.create_room(name="while you were away")
                alice.invite(room, bob.user_id)
                bob.wait_for_invite(room, timeout=90)
                bob.join(room, via=[gateways["a"]["server_name"]])
                alice.send_text(room, "before")
                bob.wait_for_message(room, "before", timeout=60, sender=alice.user_id)
                wait_until(
                    lambda: net.daemons["b"].api("GET", "/relay")["record_published"],
                    30,
                    "b publishes its relay record",
                    interval=0.5,
                )

                b = net.daemons["b"]
                net.kill("b", signal.SIGTERM)
                alice.send_text(room, "while you were away")
                # Synapse A is told the transaction was delivered once it is on r.
                wait_until(
                    lambda: net.daemons["r"].api("GET", "/relay")["store"]["envelopes"] > 0,
                    90,
                    "something is left on b's relay",
                    interval=0.5,
                )

                net.launch(b, [*args["b"], f"--peer={net.daemons['h'].uri}"])
                net.wait_up(b)
                bob.wait_for_message(room, "while you were away", timeout=90, sender=alice.user_id)
            except BaseException:
                print(hs_a.diagnostics(), hs_b.diagnostics())
                for side in ("a", "b", "r", "i"):
                    print(side, net.log(net.daemons[side]))
                raise
        counters = net.daemons["b"].api("GET", "/relay")["client_counters"]
        assert counters["envelopes delivered"] >= 1
        # The relayed transaction passed the same checks as one on a stream.
        assert not any(k.startswith("envelopes refused") for k in counters), counters
    finally:
        net.stop_all()
