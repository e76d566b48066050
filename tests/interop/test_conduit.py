"""A Conduit-family homeserver (tuwunel) and Synapse federating through Pinewood.

Three routers in a line, a -- m -- b, as real processes: Synapse beside a,
tuwunel beside b, each named after its router's key (52 base32 characters),
each sending federation through its router's proxy and trusting the
router's CA, each receiving federation from its router's inbound gateway.
A room made on each side is joined from the other, with messages both ways,
and the inbound gateways refuse nothing either homeserver sends.  tuwunel
serves its client API on the same listener as federation, so the last test
checks that other nodes reach only federation.

tuwunel is not built by the suite (:mod:`tests.interop.conduit`): without a
binary these tests skip, unless ``PINEWOOD_REQUIRE_CONDUIT=1`` (``make
test-conduit``).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
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
    SynapseUnavailable,
    ensure_synapse,
)
from tests.interop.conduit import REQUIRE_ENV, Tuwunel, TuwunelUnavailable, tuwunel_binary


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} (and ${REQUIRE_ENV}=1 forbids skipping)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def binary() -> Path:
    try:
        return tuwunel_binary()
    except TuwunelUnavailable as exc:
        _unavailable(str(exc))
        raise


@pytest.fixture(scope="module")
def synapse_python(binary: Path) -> Path:
    try:
        return ensure_synapse()
    except SynapseUnavailable as exc:
        _unavailable(f"matrix-synapse=={SYNAPSE_VERSION} could not be installed: {exc}")
        raise


@dataclass
class Overlay:
    net: DaemonNet
    synapse: Homeserver
    tuwunel: Tuwunel
    names: dict[str, str]
    alice: MatrixClient
    """On Synapse, beside router a."""
    tess: MatrixClient
    """On tuwunel, beside router b."""
    proxy_a: tuple[str, int]
    ca_a: Path

    @contextlib.contextmanager
    def diagnosed(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            print(self.synapse.diagnostics(), self.tuwunel.diagnostics())
            for side in ("a", "m", "b"):
                print(side, self.net.log(self.net.daemons[side]))
            raise

    def check_carried(self) -> None:
        """Federation went through sessions both ways, m carried it, nothing was refused."""
        for side in ("a", "b"):
            gateway = self.net.daemons[side].api("GET", "/gateway")
            assert gateway["proxy_counters"]["tunnels opened"] >= 1
            assert gateway["inbound_counters"]["requests passed"] >= 1
            assert inbound_refusals(gateway) == {}, gateway["inbound_counters"]
            print(side, "busiest node's requests", gateway["inbound_busiest_node_requests"])
        assert self.net.daemons["m"].api("GET", "/status")["traffic"]["forwarded"] > 0


@pytest.fixture(scope="module")
def overlay(
    binary: Path, synapse_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Overlay]:
    root = tmp_path_factory.mktemp("conduit-overlay")
    net = DaemonNet(root / "routers")
    try:
        line = start_gateway_line(net)
        names, ca, homeserver = line.names, line.ca, line.federation
        synapse = synapse_beside_a(line, synapse_python, root / "synapse-a")
        tuwunel = Tuwunel(
            binary,
            names["b"],
            root / "tuwunel-b",
            port=homeserver["b"],
            proxy_url=line.proxy_url("b"),
            ca_pem=ca["b"],
        )
        with synapse, tuwunel:
            yield Overlay(
                net,
                synapse,
                tuwunel,
                names,
                synapse.register_user("alice"),
                tuwunel.register_user("tess"),
                ("127.0.0.1", line.proxies["a"]),
                ca["a"],
            )
    finally:
        net.stop_all()


def create_room(client: MatrixClient, name: str) -> str:
    answer = client.request(
        "POST",
        "/_matrix/client/v3/createRoom",
        {"preset": "private_chat", "room_version": "11", "name": name},
    )
    return str(answer["room_id"])


def test_tuwunel_joins_a_synapse_room_over_the_overlay(overlay: Overlay) -> None:
    alice, tess = overlay.alice, overlay.tess
    with overlay.diagnosed():
        room = create_room(alice, "made on Synapse")
        alice.invite(room, tess.user_id)
        tess.wait_for_invite(room, timeout=90)
        assert tess.join(room, via=[overlay.names["a"]]) == room
        alice.send_text(room, "hello tuwunel, from Synapse")
        tess.wait_for_message(room, "hello tuwunel, from Synapse", timeout=60, sender=alice.user_id)
        tess.send_text(room, "hello Synapse, from tuwunel")
        alice.wait_for_message(room, "hello Synapse, from tuwunel", timeout=60, sender=tess.user_id)
        overlay.check_carried()


def test_synapse_joins_a_tuwunel_room_over_the_overlay(overlay: Overlay) -> None:
    alice, tess = overlay.alice, overlay.tess
    with overlay.diagnosed():
        room = create_room(tess, "made on tuwunel")
        tess.invite(room, alice.user_id)
        alice.wait_for_invite(room, timeout=90)
        assert alice.join(room, via=[overlay.names["b"]]) == room
        tess.send_text(room, "a room of tuwunel's")
        alice.wait_for_message(room, "a room of tuwunel's", timeout=60, sender=tess.user_id)
        alice.send_text(room, "joined from Synapse")
        tess.wait_for_message(room, "joined from Synapse", timeout=60, sender=alice.user_id)
        overlay.check_carried()


def test_only_federation_reaches_tuwunel_through_the_gateway(overlay: Overlay) -> None:
    """tuwunel serves its client API on the federation listener; through b's
    gateway another node reaches only federation.  (Runs last: it is refused.)"""

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
        for path in ("/_matrix/client/versions", "/_matrix/client/v3/register/available?username=x", "/x"):
            status, body = get(path)
            assert status == 404 and json.loads(body)["error"] == "not a server-server API path", (path, body)
        status, body = get("/_matrix/federation/v1/version")
        assert status == 200 and "server" in json.loads(body), body
        status, body = get("/_matrix/key/v2/server")
        assert status == 200 and json.loads(body)["server_name"] == overlay.names["b"], body
        assert inbound_refusals(overlay.net.daemons["b"].api("GET", "/gateway")) == {
            "refused 404: not a server-server API path": 3
        }
