"""Wakeup broadcasts as one node runs them: our own every minute, and others'
flooded on to each neighbour once (reference: ``router/state_broadcast.go``).
"""

from __future__ import annotations

from dataclasses import replace

from router.routing.constants import (
    WAKEUP_HOP_LIMIT,
)
from router.routing.outputs import (
    BroadcastReceived,
)
from router.routing.state import RoutingState
from router.routing.tree import (
    LOCAL_PORT,
)
from router.wire.broadcast import decode_wakeup
from router.wire.coordinates import tree_distance
from router.wire.errors import DecodeError
from router.wire.frames import (
    WakeupBroadcastFrame,
    encode_frame,
)


class BroadcastState(RoutingState):
    """The broadcast part of a node's routing."""

    def _maintain_broadcasts(self, now: float) -> None:
        self._seen_broadcasts.sweep(now)
        self._flood(LOCAL_PORT, self._wakeup_frame(now), tree_only=False, now=now)

    def _handle_broadcast(self, port: int, frame: WakeupBroadcastFrame, now: float) -> None:
        try:
            body = decode_wakeup(frame.payload)
        except DecodeError:
            # Relayed bytes from afar, which the reference's lax decoder would
            # pass on: drop them rather than close the honest peer.
            self.drops["broadcast malformed"] += 1
            return
        # The cheap checks come before the signature (the reference verifies
        # first): they only ever drop, and floods bring many duplicates.
        if body.root_key != self.root()[0]:
            self.drops["broadcast for another root"] += 1
            return
        if self._seen_broadcasts.is_duplicate(frame.source_key, body.sequence, now):
            self.drops["broadcast duplicate"] += 1
            return
        if self.config.verify_signatures:
            if not self._afford(port, "broadcast", now):
                return
            body.verify(frame.source_key)
        self._seen_broadcasts.accept(frame.source_key, body.sequence, now)
        self.emit(BroadcastReceived(frame.source_key))
        if frame.hop_limit <= 1:
            return
        hop_limit = frame.hop_limit - 1
        onward = encode_frame(replace(frame, hop_limit=hop_limit))
        self._flood(port, onward, tree_only=hop_limit < WAKEUP_HOP_LIMIT - 1, now=now)

    def _flood(self, from_port: int, data: bytes, *, tree_only: bool, now: float) -> None:
        """One copy to each distinct neighbour key (the fastest link to it), never back
        to ``from_port``; ``tree_only`` keeps to our parent and children."""
        coords = self.coordinates()
        chosen: dict[bytes, int] = {}
        for port, key in sorted(self.peer_keys.items()):
            if port == from_port:
                continue
            ann = self.announcements.get(port)
            if tree_only and (ann is None or tree_distance(ann.peer_coordinates, coords) != 1):
                continue
            current = chosen.get(key)
            if current is None:
                chosen[key] = port
                continue
            current_ann = self.announcements.get(current)
            if self.link_types[port] < self.link_types[current] or (
                ann is not None and current_ann is not None and ann.order < current_ann.order
            ):
                chosen[key] = port
        for port in chosen.values():
            self.send(port, data, now)
