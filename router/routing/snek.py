"""Virtual snake (SNEK) routing decisions and records, as pure functions.

Every node keeps a table of route entries installed by bootstraps that passed
through it (keyed by the bootstrapping node's key).  :func:`next_hop_snek` is
the reference's ``getNextHopSNEK`` (``router/state_snek.go``): greedy routing in
key space towards the smallest known key that is not below the destination,
using the root, every peer's ancestors, direct peers and route entries, with the
watermark keeping the path loop-free.  One rule is our own: route entries in
their last moments take no new frames (``ENTRY_BOARDING_MARGIN_S``).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from router.routing.constants import ENTRY_BOARDING_MARGIN_S, ENTRY_EXPIRY_S
from router.routing.tree import LOCAL_PORT, PeerAnnouncement, Root
from router.wire.keys import PublicKey
from router.wire.snake import Watermark


@dataclass(frozen=True, slots=True)
class SnakeEntry:
    """A route towards ``key`` learned from its bootstrap.

    ``source`` is the port the bootstrap came in on (the way back to ``key``);
    ``destination`` the port it was sent on (``None`` where it ended here).
    The entry's watermark is ``(key, sequence)``.  It lives ``lifetime``
    seconds from ``last_seen``: the reference's ``ENTRY_EXPIRY_S``, or longer
    once its path is confirmed (:mod:`router.routing.quiet_state`).
    """

    key: PublicKey
    source: int
    destination: int | None
    sequence: int
    last_seen: float
    root: Root
    lifetime: float = ENTRY_EXPIRY_S

    def valid(self, now: float) -> bool:
        return now - self.last_seen < self.lifetime


def _entry_key(entry: SnakeEntry) -> bytes:
    return entry.key


class RouteTable(Mapping[bytes, SnakeEntry]):
    """A node's route entries, in one list kept in key order.

    :func:`next_hop_snek` looks for the lowest usable key at or above a
    destination; with the entries in key order that is a search and a short
    walk, where a plain dict would make every routing decision scan the whole
    table.  One list of references is also smaller than a dict; the price is
    that a lookup by key is a binary search rather than a hash.
    """

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: list[SnakeEntry] = []

    def _find(self, key: bytes) -> int:
        """The index of ``key``'s entry, or ``-1``."""
        entries = self._entries
        index = bisect_left(entries, key, key=_entry_key)
        return index if index < len(entries) and entries[index].key == key else -1

    def __getitem__(self, key: bytes) -> SnakeEntry:
        index = self._find(key)
        if index < 0:
            raise KeyError(key)
        return self._entries[index]

    def get(self, key: bytes, default: SnakeEntry | None = None) -> SnakeEntry | None:  # type: ignore[override]
        index = self._find(key)
        return self._entries[index] if index >= 0 else default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and self._find(key) >= 0

    def __iter__(self) -> Iterator[bytes]:
        return (entry.key for entry in self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def ordered(self) -> Sequence[SnakeEntry]:
        """Every entry, lowest key first (a live view: do not change the table while walking it)."""
        return self._entries

    def __setitem__(self, key: bytes, entry: SnakeEntry) -> None:
        if entry.key != key:
            raise ValueError("a route entry is filed under its own key")
        entries = self._entries
        index = bisect_left(entries, key, key=_entry_key)
        if index < len(entries) and entries[index].key == key:
            entries[index] = entry
        else:
            entries.insert(index, entry)

    def __delitem__(self, key: bytes) -> None:
        index = self._find(key)
        if index < 0:
            raise KeyError(key)
        del self._entries[index]

    def clear(self) -> None:
        self._entries.clear()


def entry_usable(entry: SnakeEntry, watermark: Watermark, peer_keys: Mapping[int, bytes], now: float) -> bool:
    """Whether a frame with ``watermark`` may take ``entry`` (its key aside)."""
    if entry.source not in peer_keys or not entry.valid(now):
        return False
    key = entry.key
    if key > watermark.key:
        return False
    riding = key == watermark.key and entry.sequence == watermark.sequence
    if key == watermark.key and entry.sequence != 0 and entry.sequence < watermark.sequence:
        return False
    # About to expire: only a frame already riding it may go on.
    return riding or now - entry.last_seen <= entry.lifetime - ENTRY_BOARDING_MARGIN_S


def lowest_usable_entry(
    ordered: Sequence[SnakeEntry],
    *,
    destination: bytes,
    best_key: bytes,
    traffic: bool,
    watermark: Watermark,
    peer_keys: Mapping[int, bytes],
    now: float,
) -> SnakeEntry | None:
    """The route entry that beats ``best_key`` for ``destination``, if any.

    The reference tries every entry in turn; what wins is the destination's own
    entry (traffic only, unless the destination is already the best key), else
    the lowest key above the destination and below the best so far.  With the
    entries in key order that is the first usable one from the destination up.
    """
    index = bisect_left(ordered, destination, key=_entry_key)
    while index < len(ordered):
        entry = ordered[index]
        index += 1
        key = entry.key
        if key == destination:
            if not traffic or best_key == destination:
                continue
        elif key >= best_key or key > watermark.key:
            return None  # and so is every key after it
        if entry_usable(entry, watermark, peer_keys, now):
            return entry
    return None


SIGNER_INDEX_MIN = 48
"""Below this many signer keys over all peers a scan is as quick as a search, and
the index would only cost memory: :meth:`SignerIndex.build` returns ``None``."""


class SignerIndex:
    """Every peer's ancestors (the keys that signed its root announcement), in key
    order, for :func:`next_hop_snek`'s second step on a node with many peers.

    The scan that step replaces takes, of every key above the destination and
    below the best so far, the lowest, and of equal keys the first in the
    announcements' order; for traffic, the destination's own key first.  Each key
    is kept once, with the port of its first appearance in that order, so a search
    gives the same answer.  ``direct`` holds, for each peer's key, the ports that
    peer announced on, in the same order (steps 3 and 5).  Built from the
    announcements and peer keys as they stand; whoever changes them drops the index.
    """

    __slots__ = ("direct", "keys", "ports")

    def __init__(self, keys: list[bytes], ports: list[int], direct: dict[bytes, list[int]]) -> None:
        self.keys = keys
        self.ports = ports
        self.direct = direct

    @classmethod
    def build(
        cls,
        announcements: Mapping[int, PeerAnnouncement],
        peer_keys: Mapping[int, bytes],
        minimum: int = SIGNER_INDEX_MIN,
    ) -> SignerIndex | None:
        first: dict[bytes, int] = {}
        direct: dict[bytes, list[int]] = {}
        count = 0
        for port, ann in announcements.items():
            count += len(ann.signers)
            for key in ann.signers:
                if key not in first:
                    first[key] = port
            peer = peer_keys.get(port)
            if peer is not None:
                direct.setdefault(peer, []).append(port)
        if count < minimum:
            return None
        keys = sorted(first)
        return cls(keys, [first[key] for key in keys], direct)

    def exact(self, key: bytes) -> int | None:
        """The port of ``key``'s first appearance, if any peer's ancestors hold it."""
        keys = self.keys
        index = bisect_left(keys, key)
        return self.ports[index] if index < len(keys) and keys[index] == key else None

    def above(self, key: bytes) -> tuple[bytes, int] | None:
        """The lowest key strictly above ``key``, with its port, if any."""
        keys = self.keys
        index = bisect_right(keys, key)
        return (keys[index], self.ports[index]) if index < len(keys) else None


def next_hop_snek(
    *,
    bootstrap: bool,
    destination: bytes,
    our_key: bytes,
    watermark: Watermark,
    parent: int | None,
    root_key: bytes,
    announcements: Mapping[int, PeerAnnouncement],
    peer_keys: Mapping[int, bytes],
    link_types: Mapping[int, int],
    routes: Mapping[bytes, SnakeEntry],
    now: float,
    signers: SignerIndex | None = None,
) -> tuple[int | None, Watermark]:
    """The next hop for a frame routed by key, and the watermark it leaves with.

    Returns ``LOCAL_PORT`` when this node is the closest key for traffic, and
    ``None`` when a bootstrap has reached its end here.  The watermark returned
    is always the chosen key and its entry sequence (0 unless a route entry won),
    except for traffic addressed to our own key, which keeps its watermark.
    A :class:`RouteTable` brings its entries in key order; other mappings are
    sorted here.  ``signers``, if given, must be :meth:`SignerIndex.build` of
    ``announcements``.
    """
    if not bootstrap and destination == our_key:
        return LOCAL_PORT, watermark

    best_port: int | None = None if bootstrap else LOCAL_PORT
    best_key = our_key
    best_seq = 0
    best_ann: PeerAnnouncement | None = None
    traffic = not bootstrap

    # 1. The root, through our parent, unless we are heading down the snake.
    if parent is not None:
        if (bootstrap and best_key == destination) or best_key < destination < root_key:
            best_key, best_seq, best_port = root_key, 0, parent
            best_ann = announcements.get(parent)
        parent_ann = announcements.get(parent)
        if parent_ann is not None:
            for key in parent_ann.signers:
                if (traffic and key == destination and best_key != destination) or (
                    destination < key < best_key
                ):
                    best_key, best_seq, best_port, best_ann = key, 0, parent, parent_ann

    # 2. Every peer's ancestors, the peer itself included (its last signature).
    if signers is None:
        for port, ann in announcements.items():
            for key in ann.signers:
                if (traffic and key == destination and best_key != destination) or (
                    destination < key < best_key
                ):
                    best_key, best_seq, best_port, best_ann = key, 0, port, ann
    else:
        found = signers.exact(destination) if traffic and best_key != destination else None
        if found is not None:
            best_key, best_seq, best_port, best_ann = destination, 0, found, announcements.get(found)
        else:
            above = signers.above(destination)
            if above is not None and above[0] < best_key:
                best_key, best_seq, best_port = above[0], 0, above[1]
                best_ann = announcements.get(best_port)

    # 3. A direct peering with the best key beats reaching it through someone else.
    if signers is None:
        for port, ann in announcements.items():
            if peer_keys.get(port) == best_key:
                best_seq, best_port, best_ann = 0, port, ann
    elif (direct := signers.direct.get(best_key)) is not None:
        best_seq, best_port = 0, direct[-1]
        best_ann = announcements.get(best_port)

    # 4. Route entries from bootstraps, unless their watermark is worse than the frame's.
    ordered = routes.ordered if isinstance(routes, RouteTable) else sorted(routes.values(), key=_entry_key)
    entry = lowest_usable_entry(
        ordered,
        destination=destination,
        best_key=best_key,
        traffic=traffic,
        watermark=watermark,
        peer_keys=peer_keys,
        now=now,
    )
    if entry is not None:
        best_key, best_seq, best_port = entry.key, entry.sequence, entry.source
        best_ann = announcements.get(entry.source)

    # 5. Among several links to the best key, the faster type, then the earlier announcement.
    if best_port is not None and best_ann is not None:
        for port in announcements if signers is None else signers.direct.get(best_key, ()):
            if peer_keys.get(port) != best_key:
                continue
            ann = announcements[port]
            kind, best_kind = link_types.get(port, 0), link_types.get(best_port, 0)
            if kind < best_kind or (
                kind == best_kind and ann.root == best_ann.root and ann.order < best_ann.order
            ):
                best_port, best_ann = port, ann

    return best_port, Watermark(PublicKey(best_key), best_seq)
