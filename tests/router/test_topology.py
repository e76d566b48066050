from __future__ import annotations

import random

import pytest

from router import topology
from router.topology import TopologyError, parse_edge_list


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
