"""Table tests for the SNEK next hop, ported from the reference's
``router/state_snek_test.go`` scenarios, plus link and watermark cases of our own."""

from __future__ import annotations

import pytest

from router.routing.constants import ENTRY_BOARDING_MARGIN_S, ENTRY_EXPIRY_S
from router.routing.snek import SnakeEntry, next_hop_snek
from router.routing.tree import LOCAL_PORT, PeerAnnouncement
from router.wire import FULL_MASK, FULL_WATERMARK, Watermark
from tests.router.routing.routing_helpers import ZERO, K, announcement

ROOT = (K(9), 1)
PARENT_ANN = announcement(ROOT)
KNOWS_DEST_UP = announcement(ROOT, (1,), (K(6),))
KNOWS_HIGHER = announcement(ROOT, (1,), (K(5),))
NOW = 1000.0
# As in the reference tests the peers themselves carry zero keys: only their
# announcements and route entries tell the function anything.
PEERS = {1: ZERO, 2: ZERO, 3: ZERO}
ENTRY_K2 = SnakeEntry(K(2), 3, None, 0, NOW, (ZERO, 0))


def snek(
    bootstrap: bool,
    dest: int,
    ours: int,
    anns: dict[int, PeerAnnouncement],
    routes: dict[bytes, SnakeEntry] | None = None,
) -> tuple[int | None, Watermark]:
    return next_hop_snek(
        bootstrap=bootstrap,
        destination=K(dest),
        our_key=K(ours),
        watermark=FULL_WATERMARK,
        parent=1,
        root_key=K(9),
        announcements=anns,
        peer_keys=PEERS,
        link_types={},
        routes=routes or {},
        now=NOW,
    )


@pytest.mark.parametrize(
    ("bootstrap", "dest", "ours", "anns", "routes", "port", "watermark"),
    [
        # nothing closer than the root: up to the parent
        (False, 6, 4, {1: PARENT_ANN}, None, 1, (K(9), 0)),
        # traffic for our own key stays here and keeps its watermark
        (False, 6, 6, {1: PARENT_ANN, 2: KNOWS_DEST_UP}, None, LOCAL_PORT, (FULL_MASK, 0)),
        # our own bootstrap always starts towards the root
        (True, 6, 6, {1: PARENT_ANN}, None, 1, (K(9), 0)),
        # a peer that is (or knows) the destination gets traffic, but not bootstraps
        (False, 6, 4, {1: PARENT_ANN, 2: KNOWS_DEST_UP}, None, 2, (K(6), 0)),
        (True, 6, 4, {1: PARENT_ANN, 2: KNOWS_DEST_UP}, None, 1, (K(9), 0)),
        # the parent knows the destination
        (False, 6, 4, {1: KNOWS_DEST_UP}, None, 1, (K(6), 0)),
        # a key below the destination is never a candidate
        (False, 6, 4, {1: KNOWS_HIGHER}, None, 1, (K(9), 0)),
        (True, 6, 4, {1: KNOWS_HIGHER}, None, 1, (K(9), 0)),
        # a route entry for the destination itself
        (False, 2, 4, {1: PARENT_ANN}, {K(2): ENTRY_K2}, 3, (K(2), 0)),
        # a bootstrap from a lower key ends here (dead end)
        (True, 2, 4, {1: PARENT_ANN}, {K(2): ENTRY_K2}, None, (K(4), 0)),
    ],
)
def test_reference_scenarios(
    bootstrap: bool,
    dest: int,
    ours: int,
    anns: dict[int, PeerAnnouncement],
    routes: dict[bytes, SnakeEntry] | None,
    port: int | None,
    watermark: tuple[bytes, int],
) -> None:
    assert snek(bootstrap, dest, ours, anns, routes) == (port, Watermark(*watermark))  # type: ignore[arg-type]


def test_expired_route_entries_and_absent_sources_are_ignored() -> None:
    stale = SnakeEntry(K(2), 3, None, 0, NOW - ENTRY_EXPIRY_S, (ZERO, 0))
    assert snek(False, 2, 4, {1: PARENT_ANN}, {K(2): stale}) == (LOCAL_PORT, Watermark(K(4), 0))
    gone = SnakeEntry(K(2), 7, None, 0, NOW, (ZERO, 0))
    assert snek(False, 2, 4, {1: PARENT_ANN}, {K(2): gone})[0] == LOCAL_PORT


def test_watermark_filters_route_entries() -> None:
    entry = SnakeEntry(K(3), 3, None, 50, NOW, ROOT)
    kwargs = dict(
        bootstrap=False,
        destination=K(2),
        our_key=K(4),
        parent=1,
        root_key=K(9),
        announcements={1: PARENT_ANN},
        peer_keys=PEERS,
        link_types={},
        routes={K(3): entry},
        now=NOW,
    )
    # the frame has already been as low as K(3) with a newer sequence: entry is worse
    assert next_hop_snek(watermark=Watermark(K(3), 60), **kwargs) == (LOCAL_PORT, Watermark(K(4), 0))  # type: ignore[arg-type]
    assert next_hop_snek(watermark=Watermark(K(3), 40), **kwargs) == (3, Watermark(K(3), 50))  # type: ignore[arg-type]
    # a lower key than the entry's already reached: the entry is worse
    assert next_hop_snek(watermark=Watermark(K(2), 0), **kwargs)[0] == LOCAL_PORT  # type: ignore[arg-type]


def test_direct_peer_and_faster_link_preferred() -> None:
    # Peers 2 and 3 are both the key K(6); 1 (the parent) also knows K(6) as an ancestor.
    anns = {
        1: announcement(ROOT, (1, 2), (K(9), K(6))),
        2: announcement(ROOT, (1,), (K(6),), order=5),
        3: announcement(ROOT, (1,), (K(6),), order=7),
    }
    common = dict(
        bootstrap=False,
        destination=K(6),
        our_key=K(4),
        watermark=FULL_WATERMARK,
        parent=1,
        root_key=K(9),
        announcements=anns,
        peer_keys={1: K(8), 2: K(6), 3: K(6)},
        routes={},
        now=NOW,
    )
    # same link type: the earlier announcement (port 2)
    assert next_hop_snek(link_types={1: 3, 2: 3, 3: 3}, **common)[0] == 2  # type: ignore[arg-type]
    # port 3 is a faster link type to the same key
    assert next_hop_snek(link_types={1: 3, 2: 3, 3: 1}, **common)[0] == 3  # type: ignore[arg-type]


def test_entry_in_its_last_moments_takes_no_new_frames() -> None:
    def hop(entry: SnakeEntry, watermark: Watermark, bootstrap: bool = False) -> tuple[int | None, Watermark]:
        return next_hop_snek(
            bootstrap=bootstrap,
            destination=K(2),
            our_key=K(4),
            watermark=watermark,
            parent=1,
            root_key=K(9),
            announcements={1: PARENT_ANN},
            peer_keys=PEERS,
            link_types={},
            routes={K(2): entry},
            now=NOW,
        )

    # Refreshed 9 s ago: it has missed a refresh and has under the margin to live.
    old = SnakeEntry(K(2), 3, None, 70, NOW - (ENTRY_EXPIRY_S - ENTRY_BOARDING_MARGIN_S) - 0.5, ROOT)
    # A new frame (or bootstrap) does not board it ...
    assert hop(old, FULL_WATERMARK) == (LOCAL_PORT, Watermark(K(4), 0))
    assert hop(old, FULL_WATERMARK, bootstrap=True) == (None, Watermark(K(4), 0))
    # ... nor one that follows an older entry of the same key ...
    assert hop(old, Watermark(K(2), 60))[0] == LOCAL_PORT
    # ... but a frame already riding it goes on to the end of its path.
    assert hop(old, Watermark(K(2), 70)) == (3, Watermark(K(2), 70))
    # At the margin's edge it still takes new frames.
    edge = SnakeEntry(K(2), 3, None, 70, NOW - (ENTRY_EXPIRY_S - ENTRY_BOARDING_MARGIN_S), ROOT)
    assert hop(edge, FULL_WATERMARK) == (3, Watermark(K(2), 70))
