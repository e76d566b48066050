"""The Synapse harness on its own: one homeserver, then two federating through a CONNECT proxy."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import overlay_server_name
from tests.e2e.connect_proxy import ConnectProxy, LocalCA
from tests.e2e.synapse import Homeserver, free_port, homeserver


def test_one_homeserver_room_round_trip(synapse_python: Path, tmp_path: Path) -> None:
    with homeserver(synapse_python, overlay_server_name(), tmp_path / "hs") as hs:
        alice = hs.register_user("alice")
        bob = hs.register_user("bob")
        assert alice.user_id == f"@alice:{hs.server_name}"

        room = alice.create_room(name="harness")
        alice.invite(room, bob.user_id)
        bob.wait_for_invite(room, timeout=30)
        assert bob.join(room) == room
        assert room in bob.joined_rooms()

        event_id = alice.send_text(room, "hello from alice")
        seen = bob.wait_for_message(room, "hello from alice", timeout=30, sender=alice.user_id)
        assert seen["event_id"] == event_id


def test_two_homeservers_federate_through_connect_proxy(synapse_python: Path, tmp_path: Path) -> None:
    ca = LocalCA(tmp_path / "ca")
    name_a, name_b = overlay_server_name(), overlay_server_name()
    port_a, port_b = free_port(), free_port()
    with (
        ConnectProxy(ca, {name_b: port_b}) as out_a,
        ConnectProxy(ca, {name_a: port_a}) as out_b,
        Homeserver(
            synapse_python,
            name_a,
            tmp_path / "a",
            federation_port=port_a,
            client_port=free_port(),
            proxy_url=out_a.url,
            ca_pem=ca.pem_path,
        ) as hs_a,
        Homeserver(
            synapse_python,
            name_b,
            tmp_path / "b",
            federation_port=port_b,
            client_port=free_port(),
            proxy_url=out_b.url,
            ca_pem=ca.pem_path,
        ) as hs_b,
    ):
        alice = hs_a.register_user("alice")
        bob = hs_b.register_user("bob")
        room = alice.create_room()
        alice.invite(room, bob.user_id)
        bob.wait_for_invite(room, timeout=60)
        assert bob.join(room, via=[name_a]) == room
        alice.send_text(room, "over the tunnel")
        bob.wait_for_message(room, "over the tunnel", timeout=60, sender=alice.user_id)
        bob.send_text(room, "and back")
        alice.wait_for_message(room, "and back", timeout=60, sender=bob.user_id)

    # What the gateway can count on: well-known on 443 first, then 8448; SNI is the
    # bare server name; Host is the delegated name:8448; signing keys are fetched
    # from the remote itself through the same tunnel.
    for proxy, remote in ((out_a, name_b), (out_b, name_a)):
        assert proxy.observed.connects[:2] == [(remote, 443), (remote, 8448)]
        assert set(proxy.observed.connects) == {(remote, 443), (remote, 8448)}
        assert set(proxy.observed.sni) == {remote}
        assert proxy.observed.requests[0] == (remote, 443, "GET /.well-known/matrix/server HTTP/1.1", remote)
        federation = [r for r in proxy.observed.requests if r[1] == 8448]
        assert {host for _, _, _, host in federation} == {f"{remote}:8448"}
        assert any(line.startswith("GET /_matrix/key/v2/server") for _, _, line, _ in federation)
    assert any("/invite/" in line for _, _, line, _ in out_a.observed.requests)
    assert any("/send_join/" in line for _, _, line, _ in out_b.observed.requests)
