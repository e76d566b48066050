"""Probe traffic: delivery and path stretch for sampled pairs of nodes.

A round picks pairs ``(a, b)`` of nodes that can reach each other and measures
three frames per pair, each tagged with a unique payload:

1. ``first``: ``a`` sends to ``b`` with no coordinates of ``b`` cached, so the
   frame is routed by key (SNEK) all the way;
2. ``reply``: when the first frame arrived, ``b`` answers (it now knows where
   ``a`` is);
3. ``established``: when the reply arrived, ``a`` sends again, now carrying
   ``b``'s coordinates, so the hybrid rules can route it on the tree.

Hops are the transmissions of a frame, counted by the mesh's frame observer;
stretch is hops divided by the shortest hop count at the moment of sending.
A frame that has not arrived by the end of its window counts as lost.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from bench.sim.metrics import hop_distances, neighbours
from router.routing.outputs import Deliver
from router.sim.mesh import Mesh
from router.wire.frames import FrameType

TRAFFIC = FrameType.TRAFFIC
KINDS = ("first", "reply", "established")


@dataclass(slots=True)
class Probe:
    kind: str
    source: str
    destination: str
    sent_at: float
    shortest: int
    tag: bytes
    hops: int = 0
    delivered: bool = False
    delivered_at: float = math.nan
    """Simulated time of the delivery (the first, should a frame arrive twice)."""


@dataclass(slots=True)
class Round:
    started: float
    pairs: list[tuple[str, str]]
    probes: dict[str, list[Probe]] = field(default_factory=lambda: {k: [] for k in KINDS})
    stage: int = 0


class Prober:
    """Sends probe rounds into a mesh and records what became of each frame."""

    def __init__(self, mesh: Mesh, rng: random.Random, pairs: int, window_s: float) -> None:
        self.mesh = mesh
        self.rng = rng
        self.pairs = pairs
        self.window_s = window_s
        self.rounds: list[Round] = []
        self._inflight: dict[bytes, Probe] = {}
        self._counter = 0
        self._distances: dict[str, dict[str, int]] = {}
        self._adjacency: dict[str, set[str]] | None = None
        self._links_seen: tuple[int, int] = (-1, -1)

    # ------------------------------------------------------------ hooks for the mesh

    def observe_traffic(self, data: bytes) -> None:
        probe = self._inflight.get(data[-8:])
        if probe is not None:
            probe.hops += 1

    def observe_delivery(self, name: str, out: Deliver) -> None:
        probe = self._inflight.get(out.payload)
        if probe is None or probe.destination != name:
            return
        node = self.mesh.nodes.get(name)
        if node is not None and out.destination_key == node.core.key and not probe.delivered:
            probe.delivered = True
            probe.delivered_at = self.mesh.now

    # ------------------------------------------------------------ rounds

    def shortest(self, a: str, b: str) -> int | None:
        version = (len(self.mesh.links), max(self.mesh.links, default=0))
        if version != self._links_seen or self._adjacency is None:
            self._links_seen = version
            self._adjacency = neighbours(self.mesh)
            self._distances.clear()
        found = self._distances.get(a)
        if found is None:
            found = self._distances[a] = hop_distances(self._adjacency, a)
        return found.get(b)

    def sample_pairs(self) -> list[tuple[str, str]]:
        names = sorted(self.mesh.nodes)
        out: list[tuple[str, str]] = []
        tries = 0
        while len(out) < self.pairs and len(names) > 1 and tries < self.pairs * 20:
            tries += 1
            a, b = self.rng.sample(names, 2)
            if self.shortest(a, b) is not None:
                out.append((a, b))
        return out

    def start_round(self) -> None:
        pairs = self.sample_pairs()
        if not pairs:
            return
        current = Round(self.mesh.now, pairs)
        self.rounds.append(current)
        for a, b in pairs:
            # No coordinates cached either way: the first frame is routed by key.
            self.mesh.nodes[a].core.traffic.coords_cache.pop(self.mesh.nodes[b].core.key, None)
            self.mesh.nodes[b].core.traffic.coords_cache.pop(self.mesh.nodes[a].core.key, None)
            self._send(current, "first", a, b)

    def advance(self) -> None:
        """Move every round whose window has passed to its next stage."""
        now = self.mesh.now
        for current in self.rounds:
            if current.stage >= len(KINDS) or now < current.started + self.window_s * (current.stage + 1):
                continue
            kind = KINDS[current.stage]
            for probe in current.probes[kind]:
                self._inflight.pop(probe.tag, None)
            current.stage += 1
            if current.stage == 1:
                for probe in current.probes["first"]:
                    if probe.delivered and self._present(probe):
                        self._send(current, "reply", probe.destination, probe.source)
            elif current.stage == 2:
                for probe in current.probes["reply"]:
                    if probe.delivered and self._present(probe):
                        self._send(current, "established", probe.destination, probe.source)

    def settled(self) -> bool:
        return all(r.stage >= len(KINDS) for r in self.rounds)

    # ------------------------------------------------------------ internals

    def _present(self, probe: Probe) -> bool:
        return probe.source in self.mesh.nodes and probe.destination in self.mesh.nodes

    def _send(self, current: Round, kind: str, a: str, b: str) -> None:
        shortest = self.shortest(a, b)
        if shortest is None:
            return
        self._counter += 1
        tag = (self._counter | (1 << 63)).to_bytes(8, "big")
        probe = Probe(kind, a, b, self.mesh.now, shortest, tag)
        self._inflight[tag] = probe
        current.probes[kind].append(probe)
        self.mesh.send(a, self.mesh.nodes[b].core.key, tag)


def round_summary(current: Round, mesh: Mesh) -> dict[str, Any]:
    """Delivery per kind for one finished round; probes whose ends left are not counted."""
    out: dict[str, Any] = {"t": current.started, "pairs": len(current.pairs)}
    for kind in KINDS:
        counted = [p for p in current.probes[kind] if p.source in mesh.nodes and p.destination in mesh.nodes]
        delivered = sum(p.delivered for p in counted)
        out[kind] = {"sent": len(counted), "delivered": delivered}
    return out
