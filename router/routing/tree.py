"""Spanning-tree decisions, as pure functions.

The state that these decide over lives in :mod:`router.routing.core`; here are only the
three questions the tree asks, each a function of its inputs alone so that it
can be tested from a table: what to do with a received root announcement
(:func:`announcement_action`), whether a peer's announcement makes a better
parent (:func:`is_better_parent`), and which peer is the next hop towards some
coordinates (:func:`next_hop_tree`).  Reference: ``router/state_tree.go`` and
``docs/spanning_tree/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from router.routing.constants import ANNOUNCEMENT_TIMEOUT_S
from router.wire.announcement import RootAnnouncement
from router.wire.coordinates import Coordinates, common_prefix_length
from router.wire.keys import PublicKey

LOCAL_PORT = 0
"""The node itself, as a next hop: deliver to the local application."""

Root = tuple[PublicKey, int]
"""A root key and its sequence."""


@dataclass(frozen=True, slots=True)
class PeerAnnouncement:
    """The last root announcement received from one peer, with when it arrived.

    ``order`` is a node-wide counter: a lower order arrived earlier, which the
    reference uses as a proxy for a lower-latency path.
    """

    announcement: RootAnnouncement
    received_at: float
    order: int
    root: Root
    signers: tuple[PublicKey, ...]
    peer_coordinates: Coordinates

    @classmethod
    def of(cls, announcement: RootAnnouncement, received_at: float, order: int) -> PeerAnnouncement:
        return cls(
            announcement,
            received_at,
            order,
            (announcement.root_key, announcement.root_sequence),
            tuple(h.signer for h in announcement.hops),
            announcement.sender_coordinates,
        )


class AnnouncementAction(Enum):
    DROP = "drop"
    ACCEPT_UPDATE = "accept update"
    ACCEPT_NEW_PARENT = "accept new parent"
    SELECT_NEW_PARENT = "select new parent"
    SELECT_NEW_PARENT_WITH_WAIT = "select new parent after waiting"
    INFORM_PEER_OF_STRONGER_ROOT = "inform peer of stronger root"


def announcement_action(
    *, from_parent: bool, loop: bool, root_delta: int, sequence: int, last_sequence: int
) -> AnnouncementAction:
    """What to do with an announcement (reference ``determineAnnouncementAction``).

    ``root_delta`` compares the announcement's root key with our current root's:
    -1 weaker, 0 same, +1 stronger.  ``last_sequence`` is our current root's sequence.
    """
    if from_parent:
        if loop or root_delta < 0:
            # Our parent now routes through us, or has lost the root: bad news.
            return AnnouncementAction.SELECT_NEW_PARENT_WITH_WAIT
        if root_delta > 0:
            return AnnouncementAction.ACCEPT_UPDATE
        if sequence == last_sequence:
            # The parent re-signed an old update: it re-parented, which may be bad news.
            return AnnouncementAction.SELECT_NEW_PARENT_WITH_WAIT
        if sequence > last_sequence:
            return AnnouncementAction.ACCEPT_UPDATE
        return AnnouncementAction.DROP
    if loop:
        return AnnouncementAction.DROP
    if root_delta > 0:
        return AnnouncementAction.ACCEPT_NEW_PARENT
    if root_delta < 0:
        return AnnouncementAction.INFORM_PEER_OF_STRONGER_ROOT
    return AnnouncementAction.SELECT_NEW_PARENT


def is_better_parent(
    candidate: PeerAnnouncement, best: Root, best_order: int, *, loop: bool, now: float
) -> bool:
    """Whether ``candidate`` beats the best so far (reference ``isBetterParentCandidate``):
    not expired, no loop, then the higher root key, the higher sequence, the earlier arrival."""
    if now - candidate.received_at >= ANNOUNCEMENT_TIMEOUT_S or loop:
        return False
    key, sequence = candidate.root
    if key != best[0]:
        return key > best[0]
    if sequence != best[1]:
        return sequence > best[1]
    return candidate.order < best_order


def next_hop_tree(
    destination: Coordinates,
    our_coordinates: Coordinates,
    from_port: int,
    our_root: Root,
    announcements: Mapping[int, PeerAnnouncement],
    link_types: Mapping[int, int],
    depth: int | None = None,
) -> int | None:
    """The port one tree hop closer to ``destination``; ``LOCAL_PORT`` if it is us.

    ``depth``, when given, is how many ports the destination really has, of which
    ``destination`` holds only the first ones: enough when it is longer than our
    coordinates and every peer's, since distances depend only on the common
    prefix and the lengths.

    Only peers on our root (key and sequence) count, never the port the frame
    came from, and a peer must be strictly closer than we are.  ``None`` means
    no peer is closer: the caller falls back to SNEK routing.  Among equally
    close peers the faster link type wins, then the earlier announcement (the
    reference documents this tie-break; its code keeps the first peer it
    happens to iterate, so any choice among equals interoperates).
    """
    if depth is None:
        depth = len(destination)
    elif depth != len(destination) and depth <= max(
        [len(our_coordinates)] + [len(a.peer_coordinates) for a in announcements.values()]
    ):
        raise ValueError("a destination prefix must be longer than every coordinate it is compared with")
    if depth == len(our_coordinates) and destination == our_coordinates:
        return LOCAL_PORT
    best_port: int | None = None
    best_distance = len(our_coordinates) + depth - 2 * common_prefix_length(our_coordinates, destination)
    best_rank = (0, 0)
    for port, ann in announcements.items():
        if port == from_port or ann.root != our_root:
            continue
        peer = ann.peer_coordinates
        distance = len(peer) + depth - 2 * common_prefix_length(peer, destination)
        if distance > best_distance:
            continue
        rank = (link_types.get(port, 0), ann.order)
        if distance < best_distance or (best_port is not None and rank < best_rank):
            best_port, best_distance, best_rank = port, distance, rank
    return best_port
