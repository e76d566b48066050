"""Peerings over WebSocket, and one network mixing TCP, TLS and WebSocket links."""

from __future__ import annotations

import os

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.integration.daemons import DaemonNet


def test_websocket_network_converges_and_pings(net: DaemonNet) -> None:
    net.start(["a", "b", "c"], [("b", "a"), ("c", "b")], scheme="ws")
    net.wait_converged()
    net.ping_all_pairs()
    peers = net.daemons["b"].api("GET", "/peers")
    assert {p["link_type"] for p in peers if "port" in p} == {"ws"}


def test_mixed_link_types_in_one_network(net: DaemonNet) -> None:
    net.start(["t"], [], scheme="tcp")
    net.start(["s"], [("s", "t")], scheme="tls")  # s dials t over TCP
    net.start(["w"], [("w", "s")], scheme="ws")  # w dials s over TLS
    net.start(["x"], [("x", "w"), ("x", "t")], scheme="tcp")  # x dials w over WebSocket, and t
    net.wait_converged()
    net.ping_all_pairs()
    kinds = {p["link_type"] for d in net.daemons.values() for p in d.api("GET", "/peers") if "port" in p}
    assert kinds == {"tcp", "tls", "ws"}


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
