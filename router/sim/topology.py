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


def erdos_renyi(count: int, mean_degree: float, rng: random.Random) -> Topology:
    """A G(n, m) random graph with ``m = count * mean_degree / 2`` distinct edges,
    made connected by joining every smaller component to a random node of the largest."""
    names = _names(count)
    wanted = min(int(count * mean_degree / 2), count * (count - 1) // 2)
    chosen: set[tuple[int, int]] = set()
    while len(chosen) < wanted:
        a, b = rng.randrange(count), rng.randrange(count)
        if a != b:
            chosen.add((min(a, b), max(a, b)))
    edges = sorted(chosen)
    parent = list(range(count))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in edges:
        parent[find(a)] = find(b)
    groups: dict[int, list[int]] = {}
    for i in range(count):
        groups.setdefault(find(i), []).append(i)
    ordered = sorted(groups.values(), key=len, reverse=True)
    for group in ordered[1:]:
        edges.append((rng.choice(group), rng.choice(ordered[0])))
    return Topology.build(names, [(names[a], names[b]) for a, b in edges])


def barabasi_albert(count: int, attach: int, rng: random.Random) -> Topology:
    """Preferential attachment: each new node peers with ``attach`` distinct existing
    nodes chosen with probability proportional to their degree (connected by construction)."""
    if attach < 1:
        raise TopologyError("each new node must attach to at least one other")
    names = _names(count)
    seed = min(attach + 1, count)
    edges = [(names[i], names[j]) for i in range(seed) for j in range(i)]
    ends = [n for edge in edges for n in edge] or [names[0]]
    for i in range(seed, count):
        targets: set[str] = set()
        while len(targets) < attach:
            targets.add(rng.choice(ends))
        for target in sorted(targets):
            edges.append((names[i], target))
            ends.extend((names[i], target))
    return Topology.build(names, edges)
