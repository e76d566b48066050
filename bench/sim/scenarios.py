"""Scenario events: what happens to the network at which simulated time.

Each scenario turns into a list of ``(time, description, action)`` events that
the runner applies in order.  A cold start has none; root loss removes the node
with the highest key; link cuts remove links that leave the graph connected;
churn makes nodes leave and (re)join at a rate; mobility detaches one node and
attaches it elsewhere.  Nodes keep their identity when they come back.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from bench.sim.metrics import hop_distances, neighbours
from bench.sim.setup import Built, SimConfig, link_if_room

Action = Callable[[], str]


@dataclass(frozen=True, slots=True)
class Event:
    at: float
    kind: str
    action: Action


def plan(config: SimConfig, built: Built, rng: random.Random) -> list[Event]:
    at = config.event_at_s
    scenario = config.scenario
    if scenario == "cold":
        return []
    if scenario == "root-loss":
        return [Event(at, "root-loss", lambda: _remove_root(built))]
    if scenario == "link-cuts":
        return [Event(at, "link-cuts", lambda: _cut_links(built, config.cuts, rng))]
    if scenario == "mobility":
        return [Event(at, "mobility", lambda: _move_node(built, rng))]
    if scenario == "churn":
        return _churn(config, built, rng)
    raise ValueError(f"unknown scenario {scenario!r}")


def _remove_root(built: Built) -> str:
    mesh = built.mesh
    root = max(mesh.nodes, key=lambda n: mesh.nodes[n].core.key)
    mesh.remove_node(root)
    return f"removed the root {root}"


def _connected(adjacency: dict[str, set[str]]) -> bool:
    start = next(iter(adjacency))
    return len(hop_distances(adjacency, start)) == len(adjacency)


def _cut_links(built: Built, count: int, rng: random.Random) -> str:
    mesh = built.mesh
    adjacency = neighbours(mesh)
    candidates = sorted({tuple(sorted((lk.a, lk.b))) for lk in mesh.links.values()})
    rng.shuffle(candidates)
    cut: list[str] = []
    for a, b in candidates:
        if len(cut) >= count:
            break
        adjacency[a].discard(b)
        adjacency[b].discard(a)
        if _connected(adjacency):
            mesh.unlink(a, b)
            cut.append(f"{a}-{b}")
        else:
            adjacency[a].add(b)
            adjacency[b].add(a)
    return f"cut {len(cut)} links keeping the graph connected"


def _move_node(built: Built, rng: random.Random) -> str:
    mesh = built.mesh
    adjacency = neighbours(mesh)
    root = max(mesh.nodes, key=lambda n: mesh.nodes[n].core.key)
    movers = sorted(n for n in mesh.nodes if n != root and adjacency[n])
    mover = rng.choice(movers)
    old = sorted(adjacency[mover])
    for other in old:
        mesh.unlink(mover, other)
    far = hop_distances(neighbours(mesh), root)
    choices = sorted(n for n in far if n != mover and n not in old)
    new = rng.sample(choices, min(len(choices), max(1, min(3, len(old)))))
    for other in new:
        link_if_room(mesh, mover, other, built.latency(rng))
    return f"moved {mover} from {', '.join(old)} to {', '.join(sorted(new))}"


def _churn(config: SimConfig, built: Built, rng: random.Random) -> list[Event]:
    """Poisson leave/join events from ``event_at_s`` to the end of the run.

    A node that leaves takes its links with it; one that rejoins links again to
    those of its original neighbours that are present.  Leaves and joins are
    equally likely while some node is away, so the population stays near its size.
    """
    mesh = built.mesh
    total = len(mesh.nodes)
    rate = config.churn_per_min * total / 60.0
    original: dict[str, set[str]] = {n: set() for n in built.topology.nodes}
    for a, b in built.topology.edges:
        original[a].add(b)
        original[b].add(a)
    away: list[str] = []

    def step() -> str:
        if away and (rng.random() < 0.5 or len(mesh.nodes) <= 2):
            name = away.pop(rng.randrange(len(away)))
            mesh.add_node(name)
            linked = sum(
                link_if_room(mesh, name, other, built.latency(rng))
                for other in sorted(original[name])
                if other in mesh.nodes
            )
            return f"{name} joined with {linked} links"
        name = rng.choice(sorted(mesh.nodes))
        mesh.remove_node(name)
        away.append(name)
        return f"{name} left"

    events: list[Event] = []
    if rate <= 0:
        return events
    t = config.event_at_s
    while True:
        t += rng.expovariate(rate)
        if t >= config.duration_s:
            return events
        events.append(Event(t, "churn", step))
