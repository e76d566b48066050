"""The spanning tree as one node runs it: root announcements in and out, and
the choice of parent (reference: ``router/state_tree.go``).  The decisions
themselves are the pure functions of :mod:`router.routing.tree`.
"""

from __future__ import annotations

from router.routing.constants import (
    CROSSING_WINDOW_S,
    MAX_ACCEPTED_ANNOUNCEMENT_SIZE,
    MAX_ANNOUNCEMENT_BYTES,
    MAX_ANNOUNCEMENT_HOPS,
    MIN_ANNOUNCEMENT_HOP_BYTES,
    REPARENT_WAIT_S,
    ROOT_ANNOUNCEMENT_INTERVAL_S,
)
from router.routing.state import RoutingState
from router.routing.tree import (
    AnnouncementAction,
    PeerAnnouncement,
    Root,
    announcement_action,
    is_better_parent,
)
from router.wire.announcement import RootAnnouncement, decode_announcement
from router.wire.errors import DecodeError, EncodeError
from router.wire.frames import (
    TreeAnnouncementFrame,
    encode_frame,
)


class TreeState(RoutingState):
    """The tree part of a node's routing."""

    def _end_reparent_wait(self, now: float) -> None:
        self._waiting_until = None
        if self._select_new_parent(now):
            self._bootstrap_soon(now)

    def _send_announcement_to(self, port: int, ann: RootAnnouncement, now: float) -> None:
        if ann.is_loop_or_child_of(self.key):
            self.drops["announcement would loop"] += 1
            return
        try:
            signed = ann.with_hop(self.identity, port, sign=self.config.sign)
            data = encode_frame(TreeAnnouncementFrame(signed.raw))
        except EncodeError:
            self.drops["announcement too long to extend"] += 1
            return
        self._announced[port] = (ann, now)
        self.send(port, data, now)

    def _send_tree_announcements(self, now: float) -> None:
        ann = self._root_announcement()
        for port in self.peers:
            self._send_announcement_to(port, ann, now)

    def _set_parent(self, port: int | None, now: float) -> None:
        old_root = self._root_announcement().root_key
        if port != self.parent:
            self._settling_until = now + self.config.settle_window_s
        self.parent = port
        if self._root_announcement().root_key != old_root:
            self._forget_coordinates()
        self._changed()

    def _maintain_tree(self, now: float) -> None:
        self._tree_at = now + ROOT_ANNOUNCEMENT_INTERVAL_S
        if self.parent is None:
            self.sequence += 1
            self._changed()
            self._send_tree_announcements(now)

    def _become_root(self, now: float) -> None:
        if self.parent is None:
            return
        self._set_parent(None, now)
        self._maintain_tree(now)

    def _handle_announcement(self, port: int, frame: TreeAnnouncementFrame, now: float) -> None:
        if len(frame.payload) > MAX_ACCEPTED_ANNOUNCEMENT_SIZE:
            # We could not add our own hop and still fit a frame.
            raise DecodeError(f"announcement of {len(frame.payload)} bytes is too long to extend")
        if len(frame.payload) > MAX_ANNOUNCEMENT_BYTES:
            self.drops[f"announcement deeper than {MAX_ANNOUNCEMENT_HOPS} hops"] += 1
            return
        budget = self._budgets.get(port)
        most_hops = max(1, (len(frame.payload) - 33) // MIN_ANNOUNCEMENT_HOP_BYTES)
        if self.config.verify_signatures and budget is not None and not budget.holds(now, most_hops):
            # Not even parsed unless the budget could pay for every hop it may
            # hold: parsing and hashing a deep one costs about a millisecond, so
            # a flood that finds the budget short would otherwise cost that much
            # for every frame before it is dropped.
            self.drops["over budget: announcement"] += 1
            return
        ann = decode_announcement(frame.payload, verify=False)
        if len(ann.hops) > MAX_ANNOUNCEMENT_HOPS:
            self.drops[f"announcement deeper than {MAX_ANNOUNCEMENT_HOPS} hops"] += 1
            return
        # The cheap checks first; each failure closes the peer, as a bad signature does.
        ann.sanity_check(self.peer_keys[port])
        stored = self.announcements.get(port)
        if stored is not None and stored.root[0] == ann.root_key and ann.root_sequence < stored.root[1]:
            raise DecodeError("announcement sequence went backwards for the same root")
        # Charged a check for each signature not verified before: a deep
        # announcement of fresh hops costs hundreds.
        if self.config.verify_signatures and not self._verified.verify(
            ann, lambda checks: self._afford(port, "announcement", now, checks)
        ):
            return
        first = stored is None
        peer_key = self.peer_keys[port]
        send_broadcast = first and not any(
            self.peer_keys[p] == peer_key for p in self.announcements if p != port
        )
        last = self._root_announcement()
        delta = (ann.root_key > last.root_key) - (ann.root_key < last.root_key)
        self._ordering += 1
        self.announcements[port] = PeerAnnouncement.of(ann, now, self._ordering)
        self._signers_stale = True
        self._changed()
        if self._waiting_until is None:
            action = announcement_action(
                from_parent=port == self.parent,
                loop=ann.is_loop_or_child_of(self.key),
                root_delta=delta,
                sequence=ann.root_sequence,
                last_sequence=last.root_sequence,
            )
            self.stats[f"announcement: {action.value}"] += 1
            self._apply_action(action, port, last, first, now)
        if send_broadcast:
            self.send(port, self._wakeup_frame(now), now)

    def _apply_action(
        self, action: AnnouncementAction, port: int, last: RootAnnouncement, first: bool, now: float
    ) -> None:
        if action is AnnouncementAction.ACCEPT_UPDATE:
            self._send_tree_announcements(now)
        elif action is AnnouncementAction.ACCEPT_NEW_PARENT:
            self._set_parent(port, now)
            self._send_tree_announcements(now)
        elif action is AnnouncementAction.SELECT_NEW_PARENT:
            if self._select_new_parent(now):
                self._bootstrap_soon(now)
        elif action is AnnouncementAction.SELECT_NEW_PARENT_WITH_WAIT:
            self._waiting_until = now + REPARENT_WAIT_S
            self._become_root(now)
        elif action is AnnouncementAction.INFORM_PEER_OF_STRONGER_ROOT and not first:
            # Skipped when this very announcement is already on its way to the
            # peer (the two crossed on the link): a second copy tells it nothing,
            # and if it has meanwhile taken us as its parent, the copy reads as
            # "the parent re-sent an old update", which it must treat as bad news
            # (a 1 s reparent wait, and its subtree's with it).
            # Only a copy sent within the last second counts as crossing: an
            # older one the peer may have dropped since (a reset, a new parent
            # chosen without us), and it must hear of the stronger root again.
            told = self._announced.get(port)
            if told is None or told[0].raw != last.raw or now - told[1] >= CROSSING_WINDOW_S:
                self._send_announcement_to(port, last, now)

    def _select_new_parent(self, now: float) -> bool:
        """Pick the best parent; True if it changed to a peer (reference ``_selectNewParent``)."""
        current = self._root_announcement()
        best: Root = (current.root_key, current.root_sequence)
        if best[0] < self.key:
            best = (self.key, 0)
        best_order = 1 << 64
        best_port: int | None = None
        for port, ann in self.announcements.items():
            loop = ann.announcement.is_loop_or_child_of(self.key)
            if is_better_parent(ann, best, best_order, loop=loop, now=now):
                best, best_order, best_port = ann.root, ann.order, port
        if best_port is None:
            self._become_root(now)
            return False
        if best_port == self.parent:
            return False
        self._set_parent(best_port, now)
        self._send_tree_announcements(now)
        return True
