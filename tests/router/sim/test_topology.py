from __future__ import annotations

import random

import pytest

from router.sim import topology
from router.sim.topology import TopologyError, parse_edge_list


def test_edge_list_paths_and_duplicates() -> None:
    topo = parse_edge_list("# a comment\na b c\n\nc a  # closes the triangle\nb a\n")
    assert topo.nodes == ("a", "b", "c")
    assert topo.edges == (("a", "b"), ("b", "c"), ("c", "a"))


def test_edge_list_errors() -> None:
    with pytest.raises(TopologyError, match="no nodes"):
        parse_edge_list("# nothing\n")
    with pytest.raises(TopologyError, match="line 2"):
        parse_edge_list("a b\n" + "x" * 200 + "\n")


def test_generators() -> None:
    assert len(topology.line(5).edges) == 4
    assert len(topology.ring(5).edges) == 5
    assert len(topology.star(5).edges) == 4
    assert len(topology.grid(3, 4).edges) == 3 * 3 + 2 * 4
    tree = topology.random_tree(30, random.Random(1))
    assert len(tree.edges) == 29
    graph = topology.random_graph(30, 10, random.Random(1))
    assert 29 <= len(graph.edges) <= 39
    assert topology.random_graph(30, 10, random.Random(1)) == graph  # replayable from the seed


def _connected(topo: topology.Topology) -> bool:
    adjacency: dict[str, set[str]] = {n: set() for n in topo.nodes}
    for a, b in topo.edges:
        adjacency[a].add(b)
        adjacency[b].add(a)
    seen, stack = {topo.nodes[0]}, [topo.nodes[0]]
    while stack:
        for other in adjacency[stack.pop()] - seen:
            seen.add(other)
            stack.append(other)
    return len(seen) == len(topo.nodes)


def test_erdos_renyi_is_connected_with_the_asked_mean_degree() -> None:
    topo = topology.erdos_renyi(200, 4.0, random.Random(3))
    assert len(topo.nodes) == 200
    assert _connected(topo)
    # 400 sampled edges, plus at most one per component that had to be joined on.
    assert 400 <= len(topo.edges) < 400 + 200


def test_barabasi_albert_attaches_each_new_node_to_m_others() -> None:
    topo = topology.barabasi_albert(100, 2, random.Random(4))
    assert _connected(topo)
    # A triangle of the first three nodes, then two edges for each of the other 97.
    assert len(topo.edges) == 3 + 2 * 97
    degrees = {n: 0 for n in topo.nodes}
    for a, b in topo.edges:
        degrees[a] += 1
        degrees[b] += 1
    assert min(degrees.values()) == 2
    with pytest.raises(TopologyError):
        topology.barabasi_albert(10, 0, random.Random(1))
