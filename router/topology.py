"""Topologies for the in-memory mesh: edge-list files and generators.

A topology is a list of node names and a list of edges (pairs of names).  The
edge-list format is the reference simulator's: each line is a path, and
consecutive names on it are peered; blank lines and ``#`` comments are skipped.
Generators take a ``random.Random`` so that every graph can be replayed from
its seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path


class TopologyError(ValueError):
    """A topology file or generator argument is invalid."""


@dataclass(frozen=True, slots=True)
class Topology:
    nodes: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]

    @classmethod
    def build(cls, nodes: list[str], edges: list[tuple[str, str]]) -> Topology:
        seen: set[frozenset[str]] = set()
        unique: list[tuple[str, str]] = []
        for a, b in edges:
            pair = frozenset((a, b))
            if a == b or pair in seen:
                continue
            seen.add(pair)
            unique.append((a, b))
        return cls(tuple(nodes), tuple(unique))


def parse_edge_list(text: str) -> Topology:
    """Parse the reference simulator's format: each line a path of peered names."""
    nodes: dict[str, None] = {}
    edges: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        names = line.split("#", 1)[0].split()
        for name in names:
            if len(name) > 128:
                raise TopologyError(f"line {number}: node name longer than 128 characters")
            nodes.setdefault(name, None)
        edges.extend(pairwise(names))
    if not nodes:
        raise TopologyError("topology has no nodes")
    return Topology.build(list(nodes), edges)


def load_edge_list(path: Path) -> Topology:
    return parse_edge_list(path.read_text(encoding="utf-8"))


def _names(count: int) -> list[str]:
    if count < 1:
        raise TopologyError("a topology needs at least one node")
    return [f"n{i}" for i in range(count)]


def line(count: int) -> Topology:
    names = _names(count)
    return Topology.build(names, list(pairwise(names)))


def ring(count: int) -> Topology:
    names = _names(count)
    edges = list(pairwise(names))
    if count > 2:
        edges.append((names[-1], names[0]))
    return Topology.build(names, edges)


def star(count: int) -> Topology:
    names = _names(count)
    return Topology.build(names, [(names[0], n) for n in names[1:]])


def grid(width: int, height: int) -> Topology:
    names = [f"n{x}_{y}" for y in range(height) for x in range(width)]
    edges = []
    for y in range(height):
        for x in range(width):
            if x + 1 < width:
                edges.append((f"n{x}_{y}", f"n{x + 1}_{y}"))
            if y + 1 < height:
                edges.append((f"n{x}_{y}", f"n{x}_{y + 1}"))
    return Topology.build(names, edges)


def random_tree(count: int, rng: random.Random) -> Topology:
    names = _names(count)
    return Topology.build(names, [(names[i], names[rng.randrange(i)]) for i in range(1, count)])


def random_graph(count: int, extra_edges: int, rng: random.Random) -> Topology:
    """A connected random graph: a random spanning tree plus ``extra_edges`` random edges."""
    tree = random_tree(count, rng)
    edges = list(tree.edges)
    names = list(tree.nodes)
    for _ in range(extra_edges if count > 2 else 0):
        a, b = rng.sample(names, 2)
        edges.append((a, b))
    return Topology.build(names, edges)
