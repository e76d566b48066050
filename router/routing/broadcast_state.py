"""Wakeup broadcasts as one node runs them: our own every minute, and others'
flooded on to each neighbour once (reference: ``router/state_broadcast.go``).

With ``CoreConfig.broadcast_hold_s`` (Pinewood's own; the daemon sets it when
routing extensions are on) another node's broadcast is held a moment before
it is flooded on, and a neighbour that sent us the same one meanwhile gets no
copy: it has the broadcast, and would drop ours as a duplicate.  Who receives
a broadcast does not change (the first copy to arrive still decides the hop
limit and the flood's kind); duplicates crossing on a link do, and a Go
neighbour sees fewer of them.
"""

from __future__ import annotations

import math
from dataclasses import replace

from router.routing.broadcasts import HeldBroadcast, hold_fraction
from router.routing.constants import (
    MAX_HELD_BROADCASTS,
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
            held = self._held_broadcasts.get((bytes(frame.source_key), body.sequence))
            key = self.peer_keys.get(port)
            if held is not None and key is not None:
                held.heard.add(bytes(key))
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
        tree_only = hop_limit < WAKEUP_HOP_LIMIT - 1
        hold = self.config.broadcast_hold_s
        if hold <= 0 or len(self._held_broadcasts) >= MAX_HELD_BROADCASTS:
            self._flood(port, onward, tree_only=tree_only, now=now)
            return
        source = bytes(frame.source_key)
        due = now + hold * hold_fraction(self.key, source, body.sequence)
        sender = self.peer_keys.get(port)
        heard = {bytes(sender)} if sender is not None else set()
        self._held_broadcasts[(source, body.sequence)] = HeldBroadcast(due, port, onward, tree_only, heard)
        self._held_until = min(self._held_until, due)

    def _release_broadcasts(self, now: float) -> None:
        """Flood on each held broadcast that is due, to the neighbours not heard from."""
        held = self._held_broadcasts
        for ident in [i for i, h in held.items() if h.due <= now]:
            item = held.pop(ident)
            self._flood(item.from_port, item.data, tree_only=item.tree_only, now=now, heard=item.heard)
        self._held_until = min((h.due for h in held.values()), default=math.inf)

    def _flood(
        self, from_port: int, data: bytes, *, tree_only: bool, now: float, heard: set[bytes] | None = None
    ) -> None:
        """One copy to each distinct neighbour key (the fastest link to it), never back
        to ``from_port`` nor to a key in ``heard``; ``tree_only`` keeps to our parent
        and children."""
        coords = self.coordinates()
        chosen: dict[bytes, int] = {}
        for port, key in sorted(self.peer_keys.items()):
            if port == from_port or (heard and bytes(key) in heard):
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
