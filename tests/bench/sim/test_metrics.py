"""The simulator's measures against values worked out by hand."""

from __future__ import annotations

import math
import sys

from bench.sim.metrics import (
    core_state_breakdown,
    core_state_bytes,
    deep_size,
    hop_distances,
    neighbours,
    percentile,
    snake_correctness,
    summarise,
    table_sizes,
    tree_agreement,
)
from router.routing.snek import SnakeEntry
from router.sim.mesh import Mesh
from router.sim.topology import grid, line, ring
from router.wire import PublicKey
from tests.router.sim.mesh_checks import settle


def test_shortest_hops_on_small_graphs() -> None:
    mesh = Mesh.from_topology(ring(6))
    far = hop_distances(neighbours(mesh), "n0")
    assert far == {"n0": 0, "n1": 1, "n5": 1, "n2": 2, "n4": 2, "n3": 3}
    corner = hop_distances(neighbours(Mesh.from_topology(grid(3, 3))), "n0_0")
    assert corner["n2_2"] == 4
    assert corner["n1_1"] == 2


def test_unreachable_nodes_have_no_distance() -> None:
    mesh = Mesh.from_topology(line(4))
    mesh.unlink("n1", "n2")
    assert hop_distances(neighbours(mesh), "n0") == {"n0": 0, "n1": 1}


def test_summary_uses_nearest_rank_percentiles() -> None:
    s = summarise([4.0, 1.0, 2.0, 1.0])
    assert (s.count, s.mean, s.p50, s.p95, s.max) == (4, 2.0, 1.0, 4.0, 4.0)
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 0.95) == 10.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 0.5) == 5.0
    assert math.isnan(summarise([]).mean)


def test_before_any_frame_only_the_strongest_node_is_right() -> None:
    """At the first instant every node is its own root: only the root's empty
    coordinates lead to it, and only the lowest key (which wants no descending
    neighbour) has the right one."""
    mesh = Mesh.from_topology(line(5))
    assert tree_agreement(mesh) == 1 / 5
    assert snake_correctness(mesh) == 1 / 5


def test_a_snake_known_to_be_wrong() -> None:
    mesh = Mesh.from_topology(line(5), seed=2)
    settle(mesh)
    assert tree_agreement(mesh) == 1.0
    assert snake_correctness(mesh) == 1.0
    lowest = min(mesh.nodes, key=lambda n: mesh.nodes[n].core.key)
    highest = max(mesh.nodes, key=lambda n: mesh.nodes[n].core.key)
    wrong = mesh.nodes[highest].core.descending
    assert wrong is not None
    # The lowest key must have no descending neighbour; give it the highest one's.
    mesh.nodes[lowest].core.descending = wrong
    assert snake_correctness(mesh) == 4 / 5
    # And the highest key loses its own: two of five are now wrong.
    mesh.nodes[highest].core.descending = None
    assert snake_correctness(mesh) == 3 / 5


def test_two_components_are_judged_apart() -> None:
    mesh = Mesh.from_topology(line(6), seed=3)
    mesh.unlink("n2", "n3")
    settle(mesh)
    assert len(mesh.components()) == 2
    assert tree_agreement(mesh) == 1.0
    assert snake_correctness(mesh) == 1.0


def test_sizes_of_state() -> None:
    mesh = Mesh.from_topology(line(3), seed=1)
    settle(mesh)
    middle = mesh.nodes["n1"].core
    sizes = table_sizes(middle)
    assert sizes["peers"] == 2
    assert sizes["announcements"] == 2
    assert core_state_bytes(middle) > core_state_bytes(mesh.nodes["n0"].core) > 0
    parts = core_state_breakdown(middle)
    assert sum(parts.values()) == core_state_bytes(middle)
    assert parts["peer announcements"] > 0
    shared = [1, 2, 3]
    assert deep_size({"a": shared}, exclude=(shared,)) < deep_size({"a": shared})


def test_deep_size_follows_the_fields_of_compiled_classes_too() -> None:
    """On the compiled build a record has neither ``__dict__`` nor ``__slots__``
    entries for its fields; their sizes must be counted all the same."""
    key = PublicKey(bytes(range(32)))
    entry = SnakeEntry(key, 1, 2, 3, 0.0, (PublicKey(bytes(32)), 4))
    assert deep_size(entry) >= sys.getsizeof(entry) + sys.getsizeof(key) + sys.getsizeof(entry.root)
