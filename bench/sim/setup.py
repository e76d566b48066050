"""What a simulation runs on: its settings, the graph, the link model and the mesh.

Graphs are named either by a file of the reference simulator's format (looked up
in ``$PINEWOOD_GRAPHS``, else ``../shared/graphs`` beside the checkout, unless
the name is a path) or by a generator spec:

==============  ==================================================
``line:N``      a path of N nodes
``ring:N``      a cycle of N nodes
``grid:WxH``    a W by H grid
``rtree:N``     a uniformly random tree
``er:N:D``      Erdos-Renyi G(n, m) with mean degree D, made connected
``ba:N:M``      Barabasi-Albert, each new node attaching to M others
==============  ==================================================

Link latency models: ``uniform:MIN:MAX`` and ``fixed:S`` (seconds), and
``lognormal:MEDIAN:SIGMA``; a loss rate applies to traffic frames.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from router.routing.constants import BOOTSTRAP_INTERVAL_S, QUIET_BOOTSTRAP_INTERVAL_S, SETTLE_WINDOW_S
from router.routing.core import CoreConfig
from router.sim import topology
from router.sim.mesh import Mesh, MeshConfig
from router.sim.topology import Topology, TopologyError

GRAPHS_ENV = "PINEWOOD_GRAPHS"
REPO_ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ("cold", "root-loss", "link-cuts", "churn", "mobility")


@dataclass(frozen=True, slots=True)
class SimConfig:
    """One simulator run; times are simulated seconds."""

    graph: str = "graph-250.txt"
    scenario: str = "cold"
    duration_s: float = 60.0
    event_at_s: float = 40.0
    """When the scenario's event (root loss, cuts, a move, the start of churn) happens."""
    seed: int = 1
    latency: str = "uniform:0.001:0.050"
    loss: float = 0.0
    signatures: bool = True
    pairs: int = 100
    probe_every_s: float = 2.0
    probe_window_s: float = 2.0
    sample_every_s: float = 1.0
    churn_per_min: float = 0.05
    """Fraction of the nodes that leave or join per simulated minute."""
    cuts: int = 5
    memory_sample: int = 50
    progress: bool = False
    bootstrap_interval_s: float = BOOTSTRAP_INTERVAL_S
    """An experiment only: the reference (and every daemon) bootstraps every 5 s."""
    settle_window_s: float = SETTLE_WINDOW_S
    """0: the reference's bootstrap schedule, without this router's settling bootstraps."""
    quiet_bootstrap_interval_s: float = QUIET_BOOTSTRAP_INTERVAL_S
    """An experiment only: how often a node whose path is confirmed bootstraps (quiet paths)."""
    extensions: int = 0
    """The :class:`router.wire.extension.Extension` bits the extended nodes announce
    (0: every node behaves as the reference does)."""
    extended_fraction: float = 1.0
    """The share of the nodes (drawn from the seed) that announce ``extensions``;
    the others announce none, as reference nodes."""


def graphs_dir() -> Path:
    base = os.environ.get(GRAPHS_ENV)
    return Path(base) if base else REPO_ROOT.parent / "shared" / "graphs"


def _ints(parts: list[str], count: int, spec: str) -> list[int]:
    if len(parts) != count:
        raise TopologyError(f"graph spec {spec!r} needs {count} numbers")
    return [int(p) for p in parts]


def _ba(numbers: list[int], rng: random.Random) -> Topology:
    return topology.barabasi_albert(numbers[0], numbers[1], rng)


def build_topology(spec: str, rng: random.Random) -> Topology:
    """A topology from a generator spec or an edge-list file name."""
    kind, _, rest = spec.partition(":")
    parts = rest.split(":") if rest else []
    generators: dict[str, Callable[[], Topology]] = {
        "line": lambda: topology.line(*_ints(parts, 1, spec)),
        "ring": lambda: topology.ring(*_ints(parts, 1, spec)),
        "grid": lambda: topology.grid(*_ints(rest.split("x"), 2, spec)),
        "rtree": lambda: topology.random_tree(_ints(parts, 1, spec)[0], rng),
        "er": lambda: topology.erdos_renyi(_ints(parts[:1], 1, spec)[0], float(parts[1]), rng),
        "ba": lambda: _ba(_ints(parts, 2, spec), rng),
    }
    if kind in generators and rest:
        return generators[kind]()
    path = Path(spec)
    if not path.is_file():
        path = graphs_dir() / spec
    if not path.is_file():
        raise TopologyError(f"no generator or graph file called {spec!r} (looked in {graphs_dir()})")
    return topology.load_edge_list(path)


def latency_model(spec: str) -> Callable[[random.Random], float]:
    kind, _, rest = spec.partition(":")
    numbers = [float(p) for p in rest.split(":")] if rest else []
    if kind == "fixed" and len(numbers) == 1:
        return lambda _rng: numbers[0]
    if kind == "uniform" and len(numbers) == 2:
        return lambda rng: rng.uniform(numbers[0], numbers[1])
    if kind == "lognormal" and len(numbers) == 2:
        return lambda rng: rng.lognormvariate(math.log(numbers[0]), numbers[1])
    raise ValueError(f"unknown latency model {spec!r} (fixed:S, uniform:MIN:MAX, lognormal:MEDIAN:SIGMA)")


@dataclass(slots=True)
class Built:
    mesh: Mesh
    topology: Topology
    skipped_edges: int
    latency: Callable[[random.Random], float]


def build_mesh(config: SimConfig, rng: random.Random) -> Built:
    """The mesh for ``config``; edges beyond a node's port capacity are left out and counted."""
    topo = build_topology(config.graph, rng)
    core = CoreConfig(
        sign=config.signatures,
        verify_signatures=config.signatures,
        bootstrap_interval_s=config.bootstrap_interval_s,
        settle_window_s=config.settle_window_s,
        quiet_bootstrap_interval_s=config.quiet_bootstrap_interval_s,
    )
    mesh = Mesh(config.seed, MeshConfig(traffic_loss=config.loss, core=core))
    if not 0.0 <= config.extended_fraction <= 1.0:
        raise ValueError(f"the extended share must be between 0 and 1, got {config.extended_fraction}")
    if config.extensions:
        extended = replace(core, extensions=config.extensions)
        names = sorted(topo.nodes)
        count = round(len(names) * config.extended_fraction)
        # A generator of its own, so that the topology, latencies and events are
        # the same whatever the share.
        for name in random.Random(f"extended-{config.seed}").sample(names, count):
            mesh.node_configs[name] = extended
    latency = latency_model(config.latency)
    for name in topo.nodes:
        mesh.add_node(name)
    skipped = 0
    for a, b in topo.edges:
        if not link_if_room(mesh, a, b, latency(rng)):
            skipped += 1
    return Built(mesh, topo, skipped, latency)


def link_if_room(mesh: Mesh, a: str, b: str, latency_s: float) -> bool:
    full = mesh.config.core.max_peers
    if len(mesh.nodes[a].ports) >= full or len(mesh.nodes[b].ports) >= full:
        return False
    mesh.link(a, b, latency_s)
    return True
