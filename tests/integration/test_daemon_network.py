"""Real daemons on loopback: they converge, ping every pair, and heal after a SIGKILL."""

from __future__ import annotations

import signal
import time

import pytest

from tests.integration.daemons import DaemonNet

LINE = ([f"n{i}" for i in range(5)], [(f"n{i + 1}", f"n{i}") for i in range(4)])
RING = ([f"n{i}" for i in range(6)], [(f"n{(i + 1) % 6}", f"n{i}") for i in range(6)])
STAR = ([f"n{i}" for i in range(5)], [(f"n{i}", "n0") for i in range(1, 5)])


@pytest.mark.parametrize(("names", "edges"), [LINE, RING, STAR], ids=["line-5", "ring-6", "star-5"])
def test_converges_and_pings_every_pair(
    net: DaemonNet, names: list[str], edges: list[tuple[str, str]]
) -> None:
    net.start(names, edges)
    took = net.wait_converged()
    print(f"converged in {took:.1f} s")
    net.ping_all_pairs()


def test_sigkilled_peer_is_noticed_and_routes_heal(net: DaemonNet) -> None:
    names, edges = RING
    net.start(names, edges)
    net.wait_converged()
    victim = net.daemons["n3"]
    neighbours = [net.daemons["n2"], net.daemons["n4"]]
    before = {d.name: d.api("GET", "/status")["peers"] for d in neighbours}
    net.kill("n3")
    killed_at = time.monotonic()
    noticed: dict[str, float] = {}
    while len(noticed) < len(neighbours) and time.monotonic() - killed_at < 10:
        for d in neighbours:
            if d.name not in noticed and d.api("GET", "/status")["peers"] < before[d.name]:
                noticed[d.name] = time.monotonic() - killed_at
        time.sleep(0.1)
    print(f"noticed after {noticed}")
    assert set(noticed) == {d.name for d in neighbours}, f"{victim.name}'s death not noticed: {noticed}"
    assert max(noticed.values()) <= 6.0
    net.wait_converged()
    net.ping_all_pairs()


def test_frozen_peer_is_dropped_by_the_keepalive_deadline(net: DaemonNet) -> None:
    """A peer that stops answering without closing its socket (SIGSTOP) is dropped in 5-6 s."""
    names, edges = LINE
    net.start(names, edges)
    net.wait_converged()
    neighbours = [net.daemons["n1"], net.daemons["n3"]]
    before = {d.name: d.api("GET", "/status")["peers"] for d in neighbours}
    frozen = net.daemons["n2"].process
    assert frozen is not None
    frozen.send_signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    noticed: dict[str, float] = {}
    while len(noticed) < len(neighbours) and time.monotonic() - stopped_at < 10:
        for d in neighbours:
            if d.name not in noticed and d.api("GET", "/status")["peers"] < before[d.name]:
                noticed[d.name] = time.monotonic() - stopped_at
        time.sleep(0.1)
    frozen.send_signal(signal.SIGKILL)
    print(f"noticed after {noticed}")
    assert set(noticed) == {"n1", "n3"}
    # silence may have begun up to one keepalive interval before the stop
    assert min(noticed.values()) >= 1.0 and max(noticed.values()) <= 6.0
