"""Dendrite and Synapse federating over the overlay.

Three Pinewood routers in a line, a -- m -- b, as real processes.  Synapse A
sits beside router a, Dendrite D beside router b; each is named after its
router's key (the base32 server name), sends federation through its router's
gateway (``HTTPS_PROXY``, trusting the gateway's CA) and receives federation
from it on a plain-HTTP listener.  Router m only forwards.  A room made on
either side is joined from the other, and messages sent on each side arrive on
the other, checked through each server's client API.  Rooms are made with an
explicit version: Synapse's default, 12, is one the pinned Dendrite refuses,
which the last test pins down.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.daemons import DaemonNet
from tests.e2e.line import inbound_refusals, start_gateway_line, synapse_beside_a
from tests.e2e.synapse import (
    SYNAPSE_VERSION,
    Homeserver,
    MatrixClient,
    MatrixError,
    SynapseUnavailable,
    ensure_synapse,
)
from tests.interop.conftest import unavailable
from tests.interop.dendrite import DENDRITE_VERSION, Dendrite, DendriteUnavailable, ensure_dendrite


@pytest.fixture(scope="session")
def synapse_python() -> Path:
    """The pinned Synapse's interpreter, installed on first use."""
    try:
        return ensure_synapse()
    except SynapseUnavailable as exc:
        unavailable(f"matrix-synapse=={SYNAPSE_VERSION} could not be installed: {exc}")
        raise


@pytest.fixture(scope="session")
def dendrite_binaries() -> Path:
    """The directory holding the pinned Dendrite's binaries, built on first use."""
    try:
        return ensure_dendrite()
    except DendriteUnavailable as exc:
        unavailable(f"Dendrite {DENDRITE_VERSION} cannot be built: {exc}")
        raise


@dataclass
class Overlay:
    net: DaemonNet
    synapse: Homeserver
    dendrite: Dendrite
    names: dict[str, str]
    alice: MatrixClient
    """On Synapse, beside router a."""
    dave: MatrixClient
    """On Dendrite, beside router b."""
    proxy_a: tuple[str, int]
    ca_a: Path

    @contextlib.contextmanager
    def diagnosed(self) -> Iterator[None]:
        """Print both homeservers' and all routers' logs if the block fails."""
        try:
            yield
        except BaseException:
            print(self.synapse.diagnostics(), self.dendrite.diagnostics())
            for side in ("a", "m", "b"):
                print(side, self.net.log(self.net.daemons[side]))
            raise

    def check_carried(self) -> None:
        """Federation went through sessions both ways, and m carried them."""
        for side, other in (("a", "b"), ("b", "a")):
            gateway = self.net.daemons[side].api("GET", "/gateway")
            assert gateway["proxy_counters"]["tunnels opened"] >= 1
            assert gateway["inbound_counters"]["streams served"] >= 1
            # Nothing a real homeserver sent was refused by the inbound gateway.
            assert inbound_refusals(gateway) == {}, gateway["inbound_counters"]
            print(side, "busiest node's requests", gateway["inbound_busiest_node_requests"])
            sessions = self.net.daemons[side].api("GET", "/sessions")["sessions"]
            key = self.net.daemons[other].key
            assert any(s["key"] == key and s["protocol"] == "matrix" for s in sessions)
        assert self.net.daemons["m"].api("GET", "/status")["traffic"]["forwarded"] > 0


def create_room(client: MatrixClient, room_version: str, name: str) -> str:
    """A private room of ``room_version``; returns its ID."""
    answer = client.request(
        "POST",
        "/_matrix/client/v3/createRoom",
        {"preset": "private_chat", "room_version": room_version, "name": name},
    )
    return str(answer["room_id"])


@pytest.fixture(scope="module")
def overlay(
    synapse_python: Path,
    dendrite_binaries: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Overlay]:
    root = tmp_path_factory.mktemp("dendrite-overlay")
    net = DaemonNet(root / "routers")
    try:
        line = start_gateway_line(net)
        names, ca, homeserver = line.names, line.ca, line.federation
        synapse = synapse_beside_a(line, synapse_python, root / "synapse-a")
        dendrite = Dendrite(
            dendrite_binaries,
            names["b"],
            root / "dendrite-b",
            http_port=homeserver["b"],
            proxy_url=line.proxy_url("b"),
            ca_pem=ca["b"],
        )
        with synapse, dendrite:
            overlay = Overlay(
                net,
                synapse,
                dendrite,
                names,
                synapse.register_user("alice"),
                dendrite.register_user("dave"),
                ("127.0.0.1", line.proxies["a"]),
                ca["a"],
            )
            yield overlay
    finally:
        net.stop_all()


def test_dendrite_joins_a_synapse_room_over_the_overlay(overlay: Overlay) -> None:
    alice, dave = overlay.alice, overlay.dave
    with overlay.diagnosed():
        room = create_room(alice, "11", "made on Synapse")
        alice.invite(room, dave.user_id)
        dave.wait_for_invite(room, timeout=90)
        assert dave.join(room, via=[overlay.names["a"]]) == room
        alice.send_text(room, "hello Dendrite, from Synapse")
        dave.wait_for_message(room, "hello Dendrite, from Synapse", timeout=60, sender=alice.user_id)
        dave.send_text(room, "hello Synapse, from Dendrite")
        alice.wait_for_message(room, "hello Synapse, from Dendrite", timeout=60, sender=dave.user_id)
        overlay.check_carried()


def test_synapse_joins_a_dendrite_room_over_the_overlay(overlay: Overlay) -> None:
    alice, dave = overlay.alice, overlay.dave
    with overlay.diagnosed():
        room = create_room(dave, "10", "made on Dendrite")
        dave.invite(room, alice.user_id)
        alice.wait_for_invite(room, timeout=90)
        assert alice.join(room, via=[overlay.names["b"]]) == room
        dave.send_text(room, "a room of Dendrite's")
        alice.wait_for_message(room, "a room of Dendrite's", timeout=60, sender=dave.user_id)
        alice.send_text(room, "joined from Synapse")
        dave.wait_for_message(room, "joined from Synapse", timeout=60, sender=alice.user_id)
        overlay.check_carried()


def test_dendrite_refuses_an_invite_to_a_room_of_version_12(overlay: Overlay) -> None:
    """Synapse makes version 12 rooms by default; the pinned Dendrite knows versions up to 11
    (their room IDs end in a server name, version 12's do not) and refuses the invite."""
    alice, dave = overlay.alice, overlay.dave
    with overlay.diagnosed():
        room = create_room(alice, "12", "too new for Dendrite")
        assert ":" not in room
        with pytest.raises(MatrixError) as refused:
            alice.invite(room, dave.user_id)
        assert refused.value.status == 400
        assert refused.value.body.get("destination_server") == overlay.names["b"]
        assert room not in dave.invited_rooms()


def test_only_federation_reaches_dendrite_through_the_gateway(overlay: Overlay) -> None:
    """Dendrite serves every API on one listener; through b's inbound gateway,
    another node reaches only the server-server API.  (Runs last: it is refused.)"""

    def get(path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPSConnection(
            *overlay.proxy_a, timeout=60, context=ssl.create_default_context(cafile=str(overlay.ca_a))
        )
        try:
            conn.set_tunnel(overlay.names["b"], 8448)
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    with overlay.diagnosed():
        for path in (
            "/_matrix/client/versions",
            "/_synapse/admin/v1/register",
            "/_dendrite/admin/x",
            "/made/up",
        ):
            status, body = get(path)
            assert status == 404 and json.loads(body)["error"] == "not a server-server API path", (path, body)
        status, body = get("/_matrix/federation/v1/version")
        assert status == 200 and json.loads(body)["server"]["name"] == "Dendrite", body
        status, body = get("/_matrix/key/v2/server")
        assert status == 200 and json.loads(body)["server_name"] == overlay.names["b"], body
        gateway = overlay.net.daemons["b"].api("GET", "/gateway")
        assert inbound_refusals(gateway) == {"refused 404: not a server-server API path": 4}
