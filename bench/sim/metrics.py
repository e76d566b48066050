"""What the simulator measures, as functions of a mesh (or of plain numbers).

Everything here is read-only: shortest paths over the mesh's links, how many
nodes agree on the tree and have the right descending neighbour, summaries of
stretch samples, routing-table sizes and the memory a routing core holds.
"""

from __future__ import annotations

import math
import sys
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import BuiltinFunctionType, FunctionType, MethodType, ModuleType

from router.routing.core import RouterCore
from router.sim.mesh import Mesh


def neighbours(mesh: Mesh) -> dict[str, set[str]]:
    """Adjacency of the mesh's current links."""
    adjacency: dict[str, set[str]] = {name: set() for name in mesh.nodes}
    for link in mesh.links.values():
        adjacency[link.a].add(link.b)
        adjacency[link.b].add(link.a)
    return adjacency


def hop_distances(adjacency: Mapping[str, Iterable[str]], source: str) -> dict[str, int]:
    """Breadth-first hop counts from ``source`` to every node it can reach."""
    distance = {source: 0}
    queue = deque([source])
    while queue:
        here = queue.popleft()
        step = distance[here] + 1
        for other in adjacency[here]:
            if other not in distance:
                distance[other] = step
                queue.append(other)
    return distance


def tree_agreement(mesh: Mesh) -> float:
    """The fraction of nodes that have their component's root and coordinates leading to them."""
    good = 0
    for component in mesh.components():
        root = max(component, key=lambda n: mesh.nodes[n].core.key)
        root_key = mesh.nodes[root].core.key
        for name in component:
            core = mesh.nodes[name].core
            if core.root()[0] == root_key and mesh.walk_coordinates(root, core.coordinates()) == name:
                good += 1
    return good / len(mesh.nodes) if mesh.nodes else 1.0


def snake_correctness(mesh: Mesh) -> float:
    """The fraction of nodes whose descending neighbour is the next lower key in their component
    (none for the lowest)."""
    good = 0
    for component in mesh.components():
        ordered = sorted(component, key=lambda n: mesh.nodes[n].core.key)
        lower: str | None = None
        for name in ordered:
            desc = mesh.nodes[name].core.descending
            got = desc.key if desc is not None and desc.valid(mesh.now) else None
            want = mesh.nodes[lower].core.key if lower is not None else None
            good += got == want
            lower = name
    return good / len(mesh.nodes) if mesh.nodes else 1.0


@dataclass(frozen=True, slots=True)
class Summary:
    count: int
    mean: float
    p50: float
    p95: float
    max: float

    def as_dict(self) -> dict[str, float]:
        return {"count": self.count, "mean": self.mean, "p50": self.p50, "p95": self.p95, "max": self.max}


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summarise(values: Iterable[float]) -> Summary:
    ordered = sorted(values)
    if not ordered:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    return Summary(
        len(ordered),
        sum(ordered) / len(ordered),
        percentile(ordered, 0.50),
        percentile(ordered, 0.95),
        ordered[-1],
    )


def table_sizes(core: RouterCore) -> dict[str, int]:
    """The sizes of one core's routing tables."""
    return {
        "peers": len(core.peers),
        "announcements": len(core.announcements),
        "snake_routes": len(core.routes),
        "coords_cache": len(core.traffic.coords_cache),
        "seen_broadcasts": len(core._seen_broadcasts),
        "verified_prefixes": len(core._verified),
    }


_OPAQUE = (type, ModuleType, FunctionType, BuiltinFunctionType, MethodType)


def deep_size(root: object, exclude: Iterable[object] = ()) -> int:
    """Bytes held by ``root`` and everything reachable from it (``sys.getsizeof``
    summed once per object), not following into ``exclude`` or into code."""
    seen = {id(x) for x in exclude}
    stack = [root]
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _OPAQUE):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset | deque):
            stack.extend(obj)
        elif not isinstance(obj, str | bytes | bytearray | int | float | bool | memoryview):
            if hasattr(obj, "__dict__"):
                stack.append(vars(obj))
            for klass in type(obj).__mro__:
                slots = getattr(klass, "__slots__", ())
                # A class compiled by mypyc has neither __dict__ entries nor __slots__
                # for its attributes: it lists them in __mypyc_attrs__.
                compiled = getattr(klass, "__mypyc_attrs__", ())
                for slot in ((slots,) if isinstance(slots, str) else tuple(slots)) + tuple(compiled):
                    if slot != "__dict__" and hasattr(obj, slot):
                        stack.append(getattr(obj, slot))
    return total


def core_state_bytes(core: RouterCore) -> int:
    """The memory one routing core holds (its configuration, shared by all, excluded)."""
    return deep_size(core, exclude=(core.config,))


def core_state_breakdown(core: RouterCore) -> dict[str, int]:
    """:func:`core_state_bytes` split by what holds it; ``other`` is the rest."""
    parts = {
        "peer announcements": core.announcements,
        "snake routes": core.routes,
        "seen broadcasts": core._seen_broadcasts,
        "verified-signature cache": core._verified,
        "traffic caches": (core.traffic.coords_cache, core.traffic._decisions),
    }
    out = {name: deep_size(value, exclude=(core, core.config)) for name, value in parts.items()}
    out["other"] = max(0, core_state_bytes(core) - sum(out.values()))
    return out
