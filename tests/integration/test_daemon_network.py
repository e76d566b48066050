"""Real daemons on loopback: they converge, ping every pair, and heal after a SIGKILL."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from bench.daemons import Daemon, DaemonNet, wait_until

LINE = ([f"n{i}" for i in range(5)], [(f"n{i + 1}", f"n{i}") for i in range(4)])
RING = ([f"n{i}" for i in range(6)], [(f"n{(i + 1) % 6}", f"n{i}") for i in range(6)])
STAR = ([f"n{i}" for i in range(5)], [(f"n{i}", "n0") for i in range(1, 5)])


def seconds_until_peer_lost(neighbours: list[Daemon], act: Callable[[], None]) -> dict[str, float]:
    """Do ``act``; then, per neighbour, the seconds until it had one peer fewer (within 10 s)."""
    before = {d.name: d.api("GET", "/status")["peers"] for d in neighbours}
    act()
    started = time.monotonic()
    noticed: dict[str, float] = {}
    while len(noticed) < len(neighbours) and time.monotonic() - started < 10:
        for d in neighbours:
            if d.name not in noticed and d.api("GET", "/status")["peers"] < before[d.name]:
                noticed[d.name] = time.monotonic() - started
        time.sleep(0.1)
    return noticed


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
    noticed = seconds_until_peer_lost(neighbours, lambda: net.kill("n3"))
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
    frozen = net.daemons["n2"].process
    assert frozen is not None
    noticed = seconds_until_peer_lost(neighbours, lambda: frozen.send_signal(signal.SIGSTOP))
    frozen.send_signal(signal.SIGKILL)
    print(f"noticed after {noticed}")
    assert set(noticed) == {"n1", "n3"}
    # silence may have begun up to one keepalive interval before the stop
    assert min(noticed.values()) >= 1.0 and max(noticed.values()) <= 6.0


def routing(daemon: Daemon) -> dict[str, int]:
    counters: dict[str, int] = daemon.api("GET", "/status")["routing"]
    return counters


def test_pinewood_peerings_use_path_repair_and_a_broken_path_is_reported(net: DaemonNet) -> None:
    """Daemons announce path repair by default and every peering between them uses
    it; a node configured without it peers as a reference node would.  When a
    node on a bootstrap path dies, the node before it reports the break."""
    names, edges = RING
    net.start(names, edges)
    net.start(["plain"], [("plain", "n0")], extra=["--routing-extensions="])
    net.wait_converged()
    name_of = {d.key: d.name for d in net.daemons.values()}
    ports: dict[str, dict[int, str]] = {}
    for daemon in net.daemons.values():
        peers = [p for p in daemon.api("GET", "/peers") if "port" in p]
        ports[daemon.name] = {p["port"]: name_of[p["key"]] for p in peers}
        for peer in peers:
            plain = "plain" in (daemon.name, name_of[peer["key"]])
            assert peer["extensions"] == (
                [] if plain else ["path-repair", "lookahead", "one-peering", "quiet-paths"]
            ), (
                daemon.name,
                peer,
            )
    # A node that carries someone's bootstrap path from one ring node on to
    # another (neither the plain one): that next node is killed under the path,
    # and the carrier must tell the node it came from.  Not n0: the plain node
    # hangs on it alone, and would be cut off.
    ring = set(names)
    transit = [
        (name, route["key"], ports[name][route["destination_port"]])
        for name in names
        for route in net.daemons[name].api("GET", "/snake")["routes"]
        if {ports[name].get(route["destination_port"]), ports[name].get(route["source_port"])} <= ring
        and ports[name][route["destination_port"]] != "n0"
    ]
    assert transit, "no bootstrap path crosses two ring nodes"
    carrier, _, victim = transit[0]
    sent_before = routing(net.daemons[carrier]).get("path notices sent", 0)
    net.kill(victim)
    wait_until(
        lambda: routing(net.daemons[carrier]).get("path notices sent", 0) > sent_before,
        8.0,
        f"{carrier} reporting the path it carried to {victim}",
    )
    net.wait_converged()
    net.ping_all_pairs()
