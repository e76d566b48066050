"""The emulated medium: which node hears which, and how each link bends frames.

Every node of the testbed has one Ethernet interface (a TAP device); the
emulator process reads the frames each node sends and decides, here, which
other nodes receive them and when.  A link is an ordered pair of nodes with a
:class:`LinkShape`; a frame crosses it only while the link exists and is up:

- **rate**: the frame is serialised behind the ones before it on the same
  directed link (``busy_until``), as on a real interface of that speed; a frame
  that would wait longer than ``queue_s`` behind the others is dropped at the
  tail (counted as ``queue``);
- **delay and jitter**: it then arrives ``delay_s`` later, plus a uniform draw
  in ``[-jitter_s, +jitter_s]`` (never less than 0), and never before the frame
  sent ahead of it on the same link: jitter does not reorder, as on a real
  wire or radio hop (netem reorders when it jitters, which real links rarely do);
- **loss**: each frame is lost with probability ``loss`` on the wire, after it
  took its time on the link (it still used the link's capacity).

Unicast frames go to the node whose MAC address they name, if a link to it is
up; broadcast and multicast frames (ARP, IPv6 neighbour discovery, the LAN
beacons) go to every node with an up link from the sender, each across its own
link: a radio's broadcast heard by everyone in range.

Sans-I/O: :meth:`Medium.accept` takes ``now`` and a random source and returns
the deliveries to make; the emulator process moves the bytes.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

MAC_PREFIX = bytes.fromhex("027077")
"""Locally administered unicast addresses: 02:70:77:00:hi:lo for node hi*256+lo."""
MAX_NODES = 65536


@dataclass(frozen=True, slots=True)
class LinkShape:
    """How one direction of a link treats frames."""

    delay_s: float = 0.0
    jitter_s: float = 0.0
    loss: float = 0.0
    rate_bps: float = 0.0
    """Bits per second; 0 for no limit (frames are then not queued at all)."""
    queue_s: float = 0.05
    """The longest a frame may wait behind others for the link (a tail-drop queue
    measured in time: 50 ms is 625 kB at 100 Mbit/s, 6 kB at 1 Mbit/s)."""

    def __post_init__(self) -> None:
        if not (0.0 <= self.loss <= 1.0):
            raise ValueError(f"loss must be between 0 and 1, not {self.loss}")
        if self.delay_s < 0 or self.jitter_s < 0 or self.rate_bps < 0 or self.queue_s < 0:
            raise ValueError("delay, jitter, rate and queue must not be negative")

    def as_dict(self) -> dict[str, float]:
        return {
            "delay_ms": self.delay_s * 1e3,
            "jitter_ms": self.jitter_s * 1e3,
            "loss": self.loss,
            "rate_mbit": self.rate_bps / 1e6,
            "queue_ms": self.queue_s * 1e3,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, float]) -> LinkShape:
        return cls(
            delay_s=float(raw.get("delay_ms", 0.0)) / 1e3,
            jitter_s=float(raw.get("jitter_ms", 0.0)) / 1e3,
            loss=float(raw.get("loss", 0.0)),
            rate_bps=float(raw.get("rate_mbit", 0.0)) * 1e6,
            queue_s=float(raw.get("queue_ms", 50.0)) / 1e3,
        )


@dataclass(slots=True)
class DirectedLink:
    shape: LinkShape
    up: bool = True
    busy_until: float = 0.0
    last_arrival: float = 0.0
    frames: int = 0
    delivered: int = 0
    bytes_delivered: int = 0


@dataclass(frozen=True, slots=True)
class Delivery:
    at: float
    port: int
    frame: bytes


@dataclass(slots=True)
class Medium:
    """Nodes 0..n-1 and the directed links between them."""

    nodes: int
    links: dict[tuple[int, int], DirectedLink] = field(default_factory=dict)
    drops: Counter[str] = field(default_factory=Counter)
    sent_frames: list[int] = field(default_factory=list)
    sent_bytes: list[int] = field(default_factory=list)
    received_frames: list[int] = field(default_factory=list)
    received_bytes: list[int] = field(default_factory=list)
    _neighbours: dict[int, set[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.nodes <= MAX_NODES:
            raise ValueError(f"between 1 and {MAX_NODES} nodes, not {self.nodes}")
        for counters in (self.sent_frames, self.sent_bytes, self.received_frames, self.received_bytes):
            counters.extend([0] * self.nodes)
        self._neighbours = {n: set() for n in range(self.nodes)}

    def set_link(self, a: int, b: int, shape: LinkShape | None, both_ways: bool = True) -> None:
        """Make (or reshape) the link a -> b, and b -> a unless told otherwise;
        ``None`` removes it.  Reshaping keeps the frames already in flight."""
        self._check(a)
        self._check(b)
        if a == b:
            raise ValueError("a link joins two different nodes")
        for src, dst in ((a, b), (b, a)) if both_ways else ((a, b),):
            if shape is None:
                self.links.pop((src, dst), None)
                self._neighbours[src].discard(dst)
                continue
            link = self.links.get((src, dst))
            if link is None:
                self.links[(src, dst)] = DirectedLink(shape)
                self._neighbours[src].add(dst)
            else:
                link.shape = shape

    def set_up(self, a: int, b: int, up: bool) -> None:
        """Take the link between a and b down (every frame on it lost) or up again."""
        for key in ((a, b), (b, a)):
            link = self.links.get(key)
            if link is None:
                raise ValueError(f"no link between {a} and {b}")
            link.up = up

    def neighbours(self, node: int) -> list[int]:
        return sorted(d for d in self._neighbours[node] if self.links[(node, d)].up)

    def accept(self, src: int, frame: bytes, now: float, rng: random.Random) -> list[Delivery]:
        """A frame that node ``src`` sent at ``now``: where it arrives, and when."""
        self.sent_frames[src] += 1
        self.sent_bytes[src] += len(frame)
        if len(frame) < 14:
            self.drops["runt"] += 1
            return []
        if frame[0] & 1:  # group bit: broadcast or multicast
            targets = sorted(self._neighbours[src])
            if not targets:
                self.drops["no neighbour"] += 1
        else:
            dst = node_of_mac(frame[:6])
            if dst is None or dst >= self.nodes or (src, dst) not in self.links:
                self.drops["no link"] += 1
                return []
            targets = [dst]
        out = []
        for dst in targets:
            delivery = self._cross(self.links[(src, dst)], dst, frame, now, rng)
            if delivery is not None:
                out.append(delivery)
        return out

    def _cross(
        self, link: DirectedLink, dst: int, frame: bytes, now: float, rng: random.Random
    ) -> Delivery | None:
        link.frames += 1
        if not link.up:
            self.drops["link down"] += 1
            return None
        shape = link.shape
        leaves = now
        if shape.rate_bps > 0:
            start = max(now, link.busy_until)
            if start - now > shape.queue_s:
                self.drops["queue"] += 1
                return None
            leaves = start + len(frame) * 8 / shape.rate_bps
            link.busy_until = leaves
        if shape.loss > 0 and rng.random() < shape.loss:
            self.drops["loss"] += 1
            return None
        arrives = leaves + shape.delay_s
        if shape.jitter_s > 0:
            arrives = max(leaves, arrives + rng.uniform(-shape.jitter_s, shape.jitter_s))
        arrives = max(arrives, link.last_arrival)
        link.last_arrival = arrives
        link.delivered += 1
        link.bytes_delivered += len(frame)
        self.received_frames[dst] += 1
        self.received_bytes[dst] += len(frame)
        return Delivery(arrives, dst, frame)

    def _check(self, node: int) -> None:
        if not 0 <= node < self.nodes:
            raise ValueError(f"no node {node} (0..{self.nodes - 1})")


def mac_of(node: int) -> bytes:
    return MAC_PREFIX + bytes([0, node >> 8, node & 0xFF])


def mac_text(node: int) -> str:
    return ":".join(f"{b:02x}" for b in mac_of(node))


def node_of_mac(mac: bytes) -> int | None:
    if mac[:3] != MAC_PREFIX or mac[3] != 0:
        return None
    return mac[4] << 8 | mac[5]
