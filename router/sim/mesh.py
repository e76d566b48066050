"""An in-memory mesh of routing cores on a virtual clock.

Each node is a :class:`~router.routing.core.RouterCore`; links carry frames with a
per-link latency (and, optionally, a loss rate for traffic frames), in order,
like the stream links they stand for.  A discrete event queue drives
everything: frames arriving, and each core's timer at its ``next_deadline``.
No sockets, no sleeps, no wall clock: a run is a pure function of its seed.

The tests and the simulator both build on this.  It also answers the questions
they ask: does every node agree on the root, do coordinates lead through the
tree, is every descending neighbour right, does traffic arrive.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from router.routing.constants import LINK_TYPE_REMOTE
from router.routing.core import CoreConfig, RouterCore
from router.routing.outputs import ClosePeer, Deliver, Output, SendFrame
from router.sim.topology import Topology
from router.wire.extension import is_extension_frame
from router.wire.frames import FrameType
from router.wire.keys import Identity, PublicKey


def identity_for(name: str, seed: int) -> Identity:
    """A deterministic identity for a node name in a seeded run."""
    return Identity.from_seed(hashlib.sha256(f"{seed}/{name}".encode()).digest())


@dataclass(slots=True)
class Link:
    a: str
    a_port: int
    b: str
    b_port: int
    latency_s: float
    id: int


@dataclass(slots=True)
class MeshNode:
    name: str
    core: RouterCore
    ports: dict[int, Link] = field(default_factory=dict)
    delivered: list[Deliver] = field(default_factory=list)
    timer_at: float = float("inf")


@dataclass(frozen=True, slots=True)
class MeshConfig:
    min_latency_s: float = 0.001
    max_latency_s: float = 0.050
    traffic_loss: float = 0.0
    core: CoreConfig = field(default_factory=CoreConfig)
    keep_deliveries: int = 100_000


_FRAME_NAMES = {int(t): t.name for t in FrameType}
"""Frame type names by type byte, for the transmissions count."""
_TIMER = -1
"""The link id of a timer event in the queue (links are numbered from 1)."""


class Mesh:
    """Nodes, links and the event queue that runs them."""

    def __init__(self, seed: int = 0, config: MeshConfig | None = None, start: float = 0.0) -> None:
        self.seed = seed
        self.config = config or MeshConfig()
        self.rng = random.Random(seed)
        self.now = start
        self.nodes: dict[str, MeshNode] = {}
        self.by_key: dict[bytes, str] = {}
        self.links: dict[int, Link] = {}
        self._events: list[tuple[float, int, int, str, int, bytes]] = []
        self._sequence = 0
        self._next_link = 1
        self.transmissions: Counter[str] = Counter()
        self.lost = 0
        self.frame_observer: Callable[[str, str, bytes], None] | None = None
        self.delivery_observer: Callable[[str, Deliver], None] | None = None
        self.node_configs: dict[str, CoreConfig] = {}
        """Nodes that run with a core configuration of their own (else ``config.core``),
        kept across a node's leaving and joining again."""

    # ------------------------------------------------------------ building

    @classmethod
    def from_topology(cls, topology: Topology, seed: int = 0, config: MeshConfig | None = None) -> Mesh:
        mesh = cls(seed, config)
        for name in topology.nodes:
            mesh.add_node(name)
        for a, b in topology.edges:
            mesh.link(a, b)
        return mesh

    def add_node(self, name: str, identity: Identity | None = None) -> MeshNode:
        if name in self.nodes:
            raise ValueError(f"node {name!r} exists")
        ident = identity or identity_for(name, self.seed)
        node = MeshNode(name, RouterCore(ident, self.now, self.node_configs.get(name, self.config.core)))
        self.nodes[name] = node
        self.by_key[ident.public_key] = name
        self._reschedule(node)
        return node

    def remove_node(self, name: str) -> None:
        node = self.nodes[name]
        for link in list(node.ports.values()):
            self.unlink(link.a, link.b)
        del self.nodes[name]
        del self.by_key[node.core.key]

    def link(self, a: str, b: str, latency_s: float | None = None) -> Link:
        if latency_s is None:
            latency_s = self.rng.uniform(self.config.min_latency_s, self.config.max_latency_s)
        na, nb = self.nodes[a], self.nodes[b]
        # Each end is told the extensions the other announced, as its handshake would.
        a_port, a_out = na.core.add_peer(
            nb.core.key, LINK_TYPE_REMOTE, self.now, extensions=nb.core.config.extensions
        )
        b_port, b_out = nb.core.add_peer(
            na.core.key, LINK_TYPE_REMOTE, self.now, extensions=na.core.config.extensions
        )
        link = Link(a, a_port, b, b_port, latency_s, self._next_link)
        self._next_link += 1
        self.links[link.id] = link
        na.ports[a_port] = link
        nb.ports[b_port] = link
        self._process(na, a_out)
        self._process(nb, b_out)
        return link

    def unlink(self, a: str, b: str) -> None:
        """Cut every link between ``a`` and ``b``; both ends notice at once."""
        for link in [lk for lk in self.links.values() if {lk.a, lk.b} == {a, b}]:
            self._tear_down(link)

    def _tear_down(self, link: Link) -> None:
        if self.links.pop(link.id, None) is None:
            return
        for name, port in ((link.a, link.a_port), (link.b, link.b_port)):
            node = self.nodes.get(name)
            if node is not None and node.ports.get(port) is link:
                del node.ports[port]
                self._process(node, node.core.remove_peer(port, self.now))

    # ------------------------------------------------------------ running

    def send(self, source: str, destination: bytes, payload: bytes) -> None:
        node = self.nodes[source]
        self._process(node, node.core.send_traffic(destination, payload, self.now))

    def run_until(self, until: float, stop: Callable[[], bool] | None = None) -> None:
        """Process events up to virtual time ``until`` (or until ``stop()`` is true)."""
        events = self._events
        while events and events[0][0] <= until:
            when, _, link_id, name, arg, data = heapq.heappop(events)
            self.now = when
            node = self.nodes.get(name)
            if node is None:
                continue
            if link_id == _TIMER:
                if when != node.timer_at:
                    continue  # superseded
                node.timer_at = float("inf")
                self._process(node, node.core.handle_timer(when))
            else:
                link = node.ports.get(arg)
                if link is None or link.id != link_id:
                    continue  # the link went away while the frame was in flight
                self._process(node, node.core.handle_frame(arg, data, when))
            if stop is not None and stop():
                return
        self.now = max(self.now, until)

    def run_for(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    def _push(self, when: float, link_id: int, name: str, arg: int, data: bytes) -> None:
        """Queue an event: ``name``'s timer (``link_id`` is ``_TIMER``), or a frame
        arriving on port ``arg`` over the link ``link_id``."""
        self._sequence += 1
        heapq.heappush(self._events, (when, self._sequence, link_id, name, arg, data))

    def _reschedule(self, node: MeshNode) -> None:
        deadline = node.core.next_deadline()
        if deadline < self.now - 1e-9:
            # The virtual clock would run backwards: a core bug, never to be smoothed over.
            raise RuntimeError(f"{node.name} asked for a timer at {deadline}, before now ({self.now})")
        if deadline < node.timer_at or node.timer_at == float("inf"):
            node.timer_at = deadline
            self._push(deadline, _TIMER, node.name, 0, b"")

    def _process(self, node: MeshNode, outputs: Iterable[Output]) -> None:
        for out in outputs:
            if isinstance(out, SendFrame):
                self._transmit(node, out)
            elif isinstance(out, Deliver):
                node.delivered.append(out)
                if self.delivery_observer is not None:
                    self.delivery_observer(node.name, out)
                if len(node.delivered) > self.config.keep_deliveries:
                    del node.delivered[: len(node.delivered) // 2]
            elif isinstance(out, ClosePeer):
                link = node.ports.get(out.port)
                if link is not None:
                    self._tear_down(link)
        self._reschedule(node)

    def _transmit(self, node: MeshNode, out: SendFrame) -> None:
        link = node.ports.get(out.port)
        if link is None:
            return
        data = out.data
        kind = _FRAME_NAMES.get(data[5]) if len(data) > 5 else None
        if kind is None:
            kind = "EXTENSION" if is_extension_frame(data) else "invalid"
        self.transmissions[kind] += 1
        if out.traffic and self.config.traffic_loss and self.rng.random() < self.config.traffic_loss:
            self.lost += 1
            return
        peer, port = (link.b, link.b_port) if link.a == node.name else (link.a, link.a_port)
        if self.frame_observer is not None:
            self.frame_observer(node.name, peer, data)
        self._push(self.now + link.latency_s, link.id, peer, port, data)

    # ------------------------------------------------------------ inspection

    def components(self) -> list[list[str]]:
        """The connected components, each a list of node names."""
        neighbours: dict[str, set[str]] = {name: set() for name in self.nodes}
        for link in self.links.values():
            neighbours[link.a].add(link.b)
            neighbours[link.b].add(link.a)
        seen: set[str] = set()
        out = []
        for start in self.nodes:
            if start in seen:
                continue
            stack, component = [start], []
            seen.add(start)
            while stack:
                name = stack.pop()
                component.append(name)
                for other in neighbours[name]:
                    if other not in seen:
                        seen.add(other)
                        stack.append(other)
            out.append(component)
        return out

    def walk_coordinates(self, root: str, coordinates: Iterable[int]) -> str | None:
        """The node reached from ``root`` by following ``coordinates`` port by port."""
        here = root
        for port in coordinates:
            link = self.nodes[here].ports.get(port)
            if link is None:
                return None
            here = link.b if link.a == here else link.a
        return here

    def tree_problems(self) -> list[str]:
        """Every way in which the tree is not yet right (empty when it is)."""
        problems = []
        for component in self.components():
            root = max(component, key=lambda n: self.nodes[n].core.key)
            root_key = self.nodes[root].core.key
            for name in component:
                core = self.nodes[name].core
                if core.root()[0] != root_key:
                    problems.append(f"{name}: root is {core.root()[0].hex()[:8]}, not {root_key.hex()[:8]}")
                elif self.walk_coordinates(root, core.coordinates()) != name:
                    problems.append(f"{name}: coordinates {core.coordinates()} do not lead to it")
        return problems

    def snake_problems(self) -> list[str]:
        """Nodes whose descending neighbour is not the next lower key in their component."""
        problems = []
        for component in self.components():
            ordered = sorted(component, key=lambda n: self.nodes[n].core.key)
            for lower, name in zip([None, *ordered], ordered, strict=False):
                desc = self.nodes[name].core.descending
                want: PublicKey | None = self.nodes[lower].core.key if lower is not None else None
                got = desc.key if desc is not None and desc.valid(self.now) else None
                if got != want:
                    problems.append(f"{name}: descending is {_short(got)}, not {_short(want)}")
        return problems

    def converged(self) -> bool:
        return not self.tree_problems() and not self.snake_problems()


def _short(key: bytes | None) -> str:
    return key.hex()[:8] if key is not None else "none"
