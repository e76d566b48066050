"""Probe rounds: delivery, hop counts and stretch on routes known in advance."""

from __future__ import annotations

import random

from bench.sim.probes import KINDS, Prober, Round, round_summary
from router.sim.mesh import Mesh
from router.sim.topology import line
from tests.router.sim.mesh_checks import settle_and_expire


def _prober(mesh: Mesh, pairs: int = 10) -> Prober:
    prober = Prober(mesh, random.Random(1), pairs, window_s=2.0)
    mesh.frame_observer = lambda _a, _b, data: prober.observe_traffic(data) if data[5] == 3 else None
    mesh.delivery_observer = prober.observe_delivery
    return prober


def _finish(mesh: Mesh, prober: Prober) -> None:
    while not prober.settled():
        mesh.run_for(0.5)
        prober.advance()


def test_on_a_line_every_path_is_the_shortest() -> None:
    mesh = Mesh.from_topology(line(6), seed=4)
    settle_and_expire(mesh)
    prober = _prober(mesh)
    prober.start_round()
    _finish(mesh, prober)
    (done,) = prober.rounds
    summary = round_summary(done, mesh)
    for kind in KINDS:
        probes = done.probes[kind]
        assert summary[kind] == {"sent": 10, "delivered": 10}
        for p in probes:
            assert p.hops == p.shortest == abs(int(p.source[1:]) - int(p.destination[1:]))


def test_a_route_that_misses_a_new_shortcut() -> None:
    """n0 knows n4's coordinates, then a direct link n0-n4 appears; a frame sent at
    that instant (before n4's announcement can arrive over the new link) follows
    the tree along the line: 4 hops where 1 would do, a stretch of exactly 4."""
    mesh = Mesh.from_topology(line(5), seed=5)
    settle_and_expire(mesh)
    prober = _prober(mesh, pairs=0)
    current = Round(mesh.now, [("n0", "n4")])
    prober.rounds.append(current)
    # One frame each way first, so that each end has the other's coordinates.
    prober._send(current, "first", "n0", "n4")
    mesh.run_for(2.0)
    prober._send(current, "reply", "n4", "n0")
    mesh.run_for(2.0)
    mesh.link("n0", "n4", latency_s=0.5)
    prober._send(current, "established", "n0", "n4")
    mesh.run_for(2.0)
    (probe,) = current.probes["established"]
    assert probe.delivered
    assert (probe.hops, probe.shortest) == (4, 1)
    assert probe.hops / probe.shortest == 4.0


def test_frames_to_a_departed_node_do_not_count() -> None:
    mesh = Mesh.from_topology(line(4), seed=6)
    settle_and_expire(mesh)
    prober = _prober(mesh, pairs=6)
    prober.start_round()
    gone = "n3"
    mesh.remove_node(gone)
    _finish(mesh, prober)
    summary = round_summary(prober.rounds[0], mesh)
    counted = [p for p in prober.rounds[0].probes["first"] if gone not in (p.source, p.destination)]
    assert summary["first"]["sent"] == len(counted)
