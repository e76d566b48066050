"""The handshake budget charges what costs the node, and never locks out its own peers.

A flood of bare connections (connect, close) from one network used to spend
that network's budget on nothing and then lock out a good peer coming back
from it.  Now failed, timed-out and refused handshakes are charged; a network
over its budget is not refused outright but restricted to keys the node
knows (its allow_keys, its pinned static peers, and keys that have held a
peering with it), checked before any signature is verified; and each kind of
problem is logged once a minute per source, however many there are.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.daemons import DaemonNet, wait_until
from bench.hostile_peer import closed_within, connect
from router.wire import Identity, build_handshake

BUDGET = 20
"""Failed handshakes per minute from one network (``--handshakes-per-minute``)."""


@pytest.fixture
def triangle(tmp_path: Path) -> Iterator[DaemonNet]:
    net = DaemonNet(tmp_path)
    try:
        net.start(["t"], [], extra=[f"--handshakes-per-minute={BUDGET}"])
        net.start(["g1", "g2"], [("g1", "t"), ("g2", "t")])
        net.wait_converged()
        yield net
    finally:
        net.stop_all()


def log_events(net: DaemonNet, name: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in net.log(net.daemons[name]).splitlines() if line.startswith("{")]


def test_bare_connect_flood_does_not_lock_out_a_returning_peer(triangle: DaemonNet) -> None:
    t = triangle.daemons["t"]
    flood = 6 * BUDGET
    for _ in range(flood):
        with socket.create_connection(("127.0.0.1", t.port), timeout=5):
            pass
    counters: dict[str, int] = {}

    def charged() -> bool:
        nonlocal counters
        counters = t.api("GET", "/status")["counters"]
        return counters.get("handshakes failed: closed before the handshake", 0) >= flood

    wait_until(charged, 10, "the bare connections are counted as failed handshakes")

    # A stranger from the flooded network is turned away before its signature is checked.
    with connect(t.port) as sock:
        sock.sendall(build_handshake(Identity.generate()))
        assert closed_within(sock, 5) is not None
    counters = t.api("GET", "/status")["counters"]
    assert counters["handshakes refused: network over its failure budget"] == 1

    # A peer that was here before comes back from that same network at once.
    triangle.kill("g1")
    g1 = triangle.daemons["g1"]
    triangle.launch(g1, [f"--peer={t.uri}"])
    triangle.wait_up(g1)
    wait_until(lambda: t.api("GET", "/status")["peers"] >= 2, 5, "g1 peers with t again")
    triangle.wait_converged(timeout=30)
    triangle.ping_all_pairs()

    # One log line per source and reason, not one per connection.
    failed = [e for e in log_events(triangle, "t") if e.get("event") == "handshake failed"]
    assert len(failed) == 1 and failed[0]["reason"] == "closed before the handshake", failed
    refused = [e for e in log_events(triangle, "t") if e.get("event") == "handshake refused"]
    assert [e["reason"] for e in refused] == ["network over its failure budget"]


def test_a_flood_of_silent_connections_is_refused_and_the_good_peers_carry_on(triangle: DaemonNet) -> None:
    """300 connections at once that never send their handshake: at most 16 from one
    network wait for it, the others are refused at once, pings between the good
    peers go on, and a good peer still gets back in afterwards."""
    t = triangle.daemons["t"]
    rss_before = t.rss_kib()
    ping = subprocess.Popen(
        [sys.executable, "-m", "router", "ping", triangle.daemons["g2"].key, "--count=30", "--interval=0.1",
         "--timeout=2", f"--admin={triangle.daemons['g1'].admin}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    held = []
    try:
        for _ in range(300):
            held.append(socket.create_connection(("127.0.0.1", t.port), timeout=5))
        out, _ = ping.communicate(timeout=60)
        counters = t.api("GET", "/status")["counters"]
    finally:
        for sock in held:
            sock.close()
    assert re.search(r"30 sent, 30 received", out), out
    assert counters["handshakes refused: too many pending from one network"] >= 300 - 16
    assert t.rss_kib() - rss_before < 20 * 1024
    triangle.kill("g1")
    g1 = triangle.daemons["g1"]
    triangle.launch(g1, [f"--peer={t.uri}"])
    triangle.wait_up(g1)
    triangle.wait_converged(timeout=30)
    triangle.ping_all_pairs()
