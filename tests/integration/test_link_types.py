"""Peerings over WebSocket (plain and TLS) and QUIC, and one network mixing TCP, TLS,
WebSocket and QUIC."""

from __future__ import annotations

import os
import socket
import ssl
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from bench.daemons import DaemonNet, wait_until
from router.links.tls import peer_certificate_key


def test_websocket_network_converges_and_pings(net: DaemonNet) -> None:
    net.start(["a", "b", "c"], [("b", "a"), ("c", "b")], scheme="ws")
    net.wait_converged()
    net.ping_all_pairs()
    peers = net.daemons["b"].api("GET", "/peers")
    assert {p["link_type"] for p in peers if "port" in p} == {"ws"}


def test_secure_websocket_network_converges_and_pings(net: DaemonNet) -> None:
    net.start(["a", "b", "c"], [("b", "a"), ("c", "b")], scheme="wss")
    net.wait_converged()
    net.ping_all_pairs()
    peers = net.daemons["b"].api("GET", "/peers")
    assert {p["link_type"] for p in peers if "port" in p} == {"wss"}


def test_secure_websocket_presents_the_node_key_and_honours_a_pin(net: DaemonNet) -> None:
    net.start(["a", "b"], [], scheme="wss")
    a, b = net.daemons["a"], net.daemons["b"]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", b.port)) as raw, context.wrap_socket(raw) as tls:
        assert tls.version() == "TLSv1.3"
        assert peer_certificate_key(tls) == bytes.fromhex(b.key)
    wrong = f"{b.uri}?key={'33' * 32}"
    a.api("POST", "/peers", {"uri": wrong})
    wait_until(
        lambda: a.api("GET", "/status")["counters"].get("handshakes refused: pinned key mismatch", 0) >= 1,
        10,
        "the pinned key mismatch refused",
    )
    assert a.api("GET", "/status")["peers"] == 0
    a.api("DELETE", f"/peers?uri={b.uri}%3Fkey%3D{'33' * 32}")
    a.api("POST", "/peers", {"uri": f"{b.uri}?key={b.key}"})
    net.wait_converged(timeout=30)


@pytest.mark.parametrize(
    "engines",
    [("qh3", "qh3", "qh3"), ("aioquic", "aioquic", "aioquic"), ("aioquic", "qh3", "aioquic")],
    ids=["qh3", "aioquic", "mixed"],
)
def test_quic_network_converges_and_pings(net: DaemonNet, engines: tuple[str, str, str]) -> None:
    """On either QUIC engine, and mixed: in the mixed chain b (qh3) dials a
    (aioquic) and c (aioquic) dials b (qh3)."""
    for name, engine in zip("abc", engines, strict=True):
        net.start([name], [], scheme="quic", extra=[f"--quic-engine={engine}"])
    for a, b in (("b", "a"), ("c", "b")):
        net.daemons[a].api("POST", "/peers", {"uri": net.daemons[b].uri, "save": False})
    net.wait_converged()
    net.ping_all_pairs()
    peers = net.daemons["b"].api("GET", "/peers")
    assert {p["link_type"] for p in peers if "port" in p} == {"quic"}
    for name, engine in zip("abc", engines, strict=True):
        assert net.daemons[name].api("GET", "/status")["quic_engine"] == engine


def test_mixed_link_types_in_one_network(net: DaemonNet) -> None:
    net.start(["t"], [], scheme="tcp")
    net.start(["s"], [("s", "t")], scheme="tls")  # s dials t over TCP
    net.start(["w"], [("w", "s")], scheme="ws")  # w dials s over TLS
    net.start(["q"], [("q", "w")], scheme="quic")  # q dials w over WebSocket
    net.start(["x"], [("x", "q"), ("x", "t")], scheme="tcp")  # x dials q over QUIC, and t
    net.wait_converged()
    net.ping_all_pairs()
    kinds = {p["link_type"] for d in net.daemons.values() for p in d.api("GET", "/peers") if "port" in p}
    assert kinds == {"tcp", "tls", "ws", "quic"}


@pytest.mark.parametrize("engine", ["qh3", "aioquic"])
def test_pinned_key_mismatch_over_quic_is_refused(net: DaemonNet, engine: str) -> None:
    net.start(["a", "b"], [], scheme="quic", extra=[f"--quic-engine={engine}"])
    a, b = net.daemons["a"], net.daemons["b"]
    a.api("POST", "/peers", {"uri": f"{b.uri}?key={'22' * 32}"})
    wait_until(
        lambda: a.api("GET", "/status")["counters"].get("handshakes refused: pinned key mismatch", 0) >= 1,
        10,
        "the pinned key mismatch refused",
    )
    assert a.api("GET", "/status")["peers"] == 0


@pytest.mark.parametrize("engine", ["qh3", "aioquic"])
def test_a_vanished_quic_peer_is_noticed_within_the_keepalive_deadline(net: DaemonNet, engine: str) -> None:
    """UDP has no connection for the kernel to reset: a SIGKILLed QUIC peer is
    noticed by the 5 s keepalive deadline, as a frozen TCP peer is."""
    net.start(["a", "b"], [("b", "a")], scheme="quic", extra=[f"--quic-engine={engine}"])
    net.wait_converged()
    a = net.daemons["a"]
    net.kill("b")
    killed = time.monotonic()
    wait_until(lambda: a.api("GET", "/status")["peers"] == 0, 10, "a notices that b is gone")
    took = time.monotonic() - killed
    print(f"noticed after {took:.2f} s")
    assert took <= 6.0


def test_websocket_garbage_is_refused(net: DaemonNet) -> None:
    net.start(["a", "b"], [("b", "a")], scheme="ws")
    a = net.daemons["a"]
    closed = False
    with connect(f"ws://127.0.0.1:{a.port}/", open_timeout=10) as ws:
        ws.send(os.urandom(300))
        try:
            while True:
                ws.recv(timeout=5)
        except ConnectionClosed:
            closed = True
        except TimeoutError:
            closed = False
    assert closed, "a WebSocket peer sending garbage was not closed"
    net.wait_converged(timeout=30)
    net.ping_all_pairs()
