"""The traffic path: forwarding overlay traffic frames, and the caches it lives on.

For each traffic frame the routing fields are read with the codec's fast path
(:func:`router.wire.traffic_route`), never a full decode; the decision (next
port, new watermark, or a drop reason) is looked up in a cache keyed by
everything it depends on (destination key and coordinates, the frame's
watermark, the port it came from) and computed only on a miss.  The core voids
the cache whenever routing state changes.  The original bytes are sent onward
unless the watermark or hop limit must change.

Also here: the coordinates cache (who sent us traffic, and from where in the
tree) that lets replies be tree-routed (reference: ``_coordsCache``).
"""

from __future__ import annotations

from router.routing.constants import COORDS_CACHE_LIFETIME_S, ENTRY_BOARDING_MARGIN_S
from router.routing.lookahead import next_hop_lookahead
from router.routing.outputs import Deliver
from router.routing.state import RoutingState
from router.routing.tree import LOCAL_PORT, next_hop_tree
from router.wire.coordinates import (
    Coordinates,
    coordinate_depth,
    decode_coordinate_ports,
    decode_coordinate_prefix,
)
from router.wire.errors import DecodeError, EncodeError
from router.wire.fastpath import (
    TrafficRoute,
    rewrite_traffic,
    splice_watermark,
    strip_destination,
    traffic_route,
    watermark_bytes,
)
from router.wire.frames import MAX_HOP_LIMIT, TrafficFrame, encode_frame
from router.wire.keys import PublicKey
from router.wire.snake import FULL_WATERMARK, Watermark

DECISION_CACHE_MAX = 65536
MAX_CACHED_COORDINATE_BYTES = 256
"""Longer destination coordinates are routed but their decisions not cached."""
COORDS_CACHE_MAX = 16384
MAX_CACHED_COORDINATE_PORTS = 128
"""Deeper source coordinates are not remembered (no real tree is this deep)."""

# (next port, drop reason or None, the time until which the decision holds
#  without a state change, the watermark to leave with when the frame switches
#  from tree to SNEK routing or None, the new watermark's wire bytes or b"" when
#  the frame's own watermark stays)
Decision = tuple[int, str | None, float, Watermark | None, bytes]
FOREVER = float("inf")


class TrafficPath:
    """Forwarding of traffic frames for one :class:`~router.routing.core.RouterCore`."""

    __slots__ = ("_decisions", "coords_cache", "delivered", "forwarded", "hits", "misses", "sent", "state")

    def __init__(self, state: RoutingState) -> None:
        self.state = state
        self._decisions: dict[tuple[bytes, bytes, bytes, int, int], Decision] = {}
        self.coords_cache: dict[bytes, tuple[Coordinates, float, bytes]] = {}
        self.hits = 0
        self.misses = 0
        self.forwarded = 0
        self.delivered = 0
        self.sent = 0

    def invalidate(self) -> None:
        self._decisions.clear()

    # ------------------------------------------------------------ entry points

    def forward_frame(self, port: int, data: bytes, now: float) -> tuple[int, bytes] | None:
        """Forward or deliver a peer's traffic frame: where it goes next, (port,
        frame as rewritten), for the caller to send; None if it was delivered here
        (an output) or dropped (a counter).  :class:`DecodeError` if its framing is
        wrong (only the peer could have done that: the caller closes it)."""
        route = traffic_route(data)
        if route.destination_key == self.state.key:
            self._deliver(data, now, route)
            return None
        return self._route(port, data, route, now)

    def send_local(self, destination: PublicKey, payload: bytes, now: float, by_key: bool = False) -> None:
        """Send from the local application; ``by_key`` routes by key alone (no
        cached coordinates), for frames meant for whoever is closest to the key."""
        core = self.state
        cached = None if by_key else self.coords_cache.get(destination)
        coords: Coordinates = ()
        if cached is not None and now - cached[1] < COORDS_CACHE_LIFETIME_S:
            coords = cached[0]
        data = encode_frame(
            TrafficFrame(coords, core.coordinates(), destination, core.key, payload, hop_limit=MAX_HOP_LIMIT)
        )
        self.sent += 1
        if destination == core.key:
            self._deliver(data, now)
            return
        sent = self._route(LOCAL_PORT, data, traffic_route(data), now)
        if sent is not None:
            core.send(sent[0], sent[1], now, traffic=True)

    def sweep_coords_cache(self, now: float) -> None:
        cache = self.coords_cache
        for key in [k for k, (_, seen, _) in cache.items() if now - seen >= COORDS_CACHE_LIFETIME_S]:
            del cache[key]

    # ------------------------------------------------------------ internals

    def _deliver(self, data: bytes, now: float, route: TrafficRoute | None = None) -> None:
        """Hand a frame to the local application without building frame objects.

        The source coordinates are parsed only when they differ from what the
        coordinates cache holds for that sender; otherwise its age is refreshed.
        """
        core = self.state
        if route is None:
            route = traffic_route(data)
        source_at = 14 + len(route.destination)
        source_len = (data[source_at] << 8) | data[source_at + 1]
        source_raw = data[source_at + 2 : source_at + 2 + source_len]
        key_at = route.source_key_offset
        source_key = PublicKey(data[key_at : key_at + 32])
        payload_at = route.watermark_end if route.watermark_offset >= 0 else key_at + 32
        destination_key = PublicKey(route.destination_key)
        if destination_key == core.key and source_raw:
            cache = self.coords_cache
            cached = cache.get(source_key)
            if cached is not None and cached[2] == source_raw:
                cache[source_key] = (cached[0], now, source_raw)
            else:
                try:
                    ports = decode_coordinate_ports(source_raw)
                except DecodeError:
                    # Coordinates made wrong by the origin, relayed unchanged: drop.
                    core.drops["traffic malformed"] += 1
                    return
                if len(ports) <= MAX_CACHED_COORDINATE_PORTS:
                    cache.pop(source_key, None)
                    cache[source_key] = (ports, now, source_raw)
                    if len(cache) > COORDS_CACHE_MAX:
                        del cache[next(iter(cache))]
        self.delivered += 1
        core.emit(Deliver(source_key, destination_key, data[payload_at:]))

    def _route(self, port: int, data: bytes, route: TrafficRoute, now: float) -> tuple[int, bytes] | None:
        """Where the frame goes next, (port, frame as rewritten), or None: dropped
        (counted) or delivered here."""
        core = self.state
        key = (route.destination_key, route.destination, route.watermark_key, route.watermark_sequence, port)
        decision = self._decisions.get(key)
        if decision is None or now >= decision[2]:
            self.misses += 1
            try:
                decision = self._decide(port, route, now)
            except DecodeError:
                core.drops["traffic malformed"] += 1
                return None
            if len(self._decisions) >= DECISION_CACHE_MAX:
                self._decisions.clear()
            if len(route.destination) <= MAX_CACHED_COORDINATE_BYTES:
                self._decisions[key] = decision
        else:
            self.hits += 1
        next_port, reason, _, convert_with, wire = decision
        if reason is not None:
            core.drops[reason] += 1
            return None
        hop_limit = route.hop_limit
        if core.config.hop_limiting:
            if hop_limit <= 1:
                core.drops["hop limit"] += 1
                return None
            hop_limit -= 1
        if next_port == LOCAL_PORT:
            # We are the closest key to a destination that is not here.
            self._deliver(data, now, route)
            return None
        try:
            if convert_with is not None:
                data = strip_destination(data, route, convert_with, hop_limit)
            elif wire:
                data = splice_watermark(data, route, wire, hop_limit)
            elif hop_limit != route.hop_limit:
                data = rewrite_traffic(data, route, hop_limit=hop_limit)
        except EncodeError:
            # A frame at the size limit cannot take a longer watermark.
            core.drops["traffic too large to rewrite"] += 1
            return None
        self.forwarded += 1
        return next_port, data

    def _decide(self, port: int, route: TrafficRoute, now: float) -> Decision:
        core = self.state
        converted = False
        if route.destination:
            ours = core.coordinates()
            root = core.root()
            # With lookahead, our lookahead peers' peers too (Pinewood's own extension).
            neighbours = core.neighbour_coordinates(root) if core.neighbour_claims else {}
            # Only as many ports as the deepest coordinates they are compared with,
            # and one more: the rest of a deep destination matters only by its length.
            needed = 1 + max(
                [len(ours)]
                + [len(a.peer_coordinates) for a in core.announcements.values()]
                + [len(c) for found in neighbours.values() for c in found]
            )
            depth = coordinate_depth(route.destination)
            if depth > needed:
                destination = decode_coordinate_prefix(route.destination, needed)
            else:
                destination = decode_coordinate_ports(route.destination)
            tree_port = next_hop_tree(
                destination, ours, port, root, core.announcements, core.link_types, depth
            )
            if neighbours and tree_port is not None and tree_port != LOCAL_PORT:
                better = next_hop_lookahead(
                    destination,
                    depth,
                    ours,
                    port,
                    {p: a.peer_coordinates for p, a in core.announcements.items() if a.root == root},
                    neighbours,
                    {p: (core.link_types.get(p, 0), a.order) for p, a in core.announcements.items()},
                )
                if better is not None:
                    tree_port = better
            # Where the coordinates lead here but the key is not ours, they were
            # stale (the destination moved, or the tree changed under a cached
            # entry).  The reference hands such a frame to the local application;
            # we route it on by key instead, so it still reaches its destination.
            if tree_port is not None and tree_port != LOCAL_PORT:
                return tree_port, None, FOREVER, None, b""
            converted = True
            frame_watermark = FULL_WATERMARK
        else:
            frame_watermark = Watermark(PublicKey(route.watermark_key), route.watermark_sequence)
        next_port, watermark = core.snek(route.destination_key, frame_watermark, bootstrap=False, now=now)
        reason: str | None = None
        if next_port is None:
            next_port, reason = LOCAL_PORT, "no route"
        elif next_port == port and port != LOCAL_PORT:
            # (Our own frame for a key that is not there, with no closer key
            # known, is handed to our own application, like anyone else's.)
            reason = "back to sender"
        elif watermark.worse_than(frame_watermark):
            reason = "watermark"
        # Route entries expire with time, not only with state changes: a decision
        # that rests on one holds only while that entry is valid.
        # A frame that boarded an entry here (rather than riding it on) would be
        # turned away from it for its last ``ENTRY_BOARDING_MARGIN_S``.
        entry = core.routes.get(watermark.key)
        valid_until = FOREVER
        if entry is not None:
            valid_until = entry.last_seen + entry.lifetime
            if watermark != frame_watermark:
                valid_until -= ENTRY_BOARDING_MARGIN_S
        # Only a watermark that changes is written; a converted frame gets one anyway.
        wire = b"" if converted or watermark == frame_watermark else watermark_bytes(watermark)
        return next_port, reason, valid_until, watermark if converted else None, wire
