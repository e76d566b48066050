"""Table tests for the spanning-tree decisions, ported from the reference's
``router/state_tree_test.go`` scenarios (our own code and tables)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.routing.constants import ANNOUNCEMENT_TIMEOUT_S
from router.routing.tree import (
    LOCAL_PORT,
    AnnouncementAction,
    Root,
    announcement_action,
    is_better_parent,
    next_hop_tree,
)
from tests.router.routing.routing_helpers import K, announcement

A = AnnouncementAction
DELTAS_AND_SEQUENCES = [(d, n, last) for d in (-1, 1, 0) for n, last in ((1, 1), (1, 2), (2, 1))]


@pytest.mark.parametrize(("delta", "seq", "last"), DELTAS_AND_SEQUENCES)
def test_loop_from_parent_waits_and_from_others_drops(delta: int, seq: int, last: int) -> None:
    for from_parent, expected in ((True, A.SELECT_NEW_PARENT_WITH_WAIT), (False, A.DROP)):
        got = announcement_action(
            from_parent=from_parent, loop=True, root_delta=delta, sequence=seq, last_sequence=last
        )
        assert got is expected


@pytest.mark.parametrize(
    ("from_parent", "delta", "seq", "last", "expected"),
    [
        (True, -1, 1, 1, A.SELECT_NEW_PARENT_WITH_WAIT),
        (True, -1, 1, 2, A.SELECT_NEW_PARENT_WITH_WAIT),
        (True, -1, 2, 1, A.SELECT_NEW_PARENT_WITH_WAIT),
        (True, 1, 1, 1, A.ACCEPT_UPDATE),
        (True, 1, 1, 2, A.ACCEPT_UPDATE),
        (True, 1, 2, 1, A.ACCEPT_UPDATE),
        (True, 0, 1, 1, A.SELECT_NEW_PARENT_WITH_WAIT),
        (True, 0, 1, 2, A.DROP),
        (True, 0, 2, 1, A.ACCEPT_UPDATE),
        (False, -1, 1, 1, A.INFORM_PEER_OF_STRONGER_ROOT),
        (False, -1, 1, 2, A.INFORM_PEER_OF_STRONGER_ROOT),
        (False, -1, 2, 1, A.INFORM_PEER_OF_STRONGER_ROOT),
        (False, 1, 1, 1, A.ACCEPT_NEW_PARENT),
        (False, 1, 1, 2, A.ACCEPT_NEW_PARENT),
        (False, 1, 2, 1, A.ACCEPT_NEW_PARENT),
        (False, 0, 1, 1, A.SELECT_NEW_PARENT),
        (False, 0, 1, 2, A.SELECT_NEW_PARENT),
        (False, 0, 2, 1, A.SELECT_NEW_PARENT),
    ],
)
def test_announcement_action(from_parent: bool, delta: int, seq: int, last: int, expected: A) -> None:
    got = announcement_action(
        from_parent=from_parent, loop=False, root_delta=delta, sequence=seq, last_sequence=last
    )
    assert got is expected


NOW = 10_000.0


@pytest.mark.parametrize(
    ("root", "order", "best", "best_order", "loop", "expected"),
    [
        ((6, 1), 0, (5, 1), 0, False, True),  # higher root
        ((6, 0), 0, (5, 1), 0, True, False),  # contains a loop
        ((4, 0), 0, (5, 1), 0, False, False),  # lower root, whatever else
        ((4, 2), 0, (5, 1), 0, False, False),
        ((4, 1), 0, (5, 2), 0, False, False),
        ((4, 1), 1, (5, 1), 0, False, False),
        ((4, 2), 1, (5, 1), 0, False, False),
        ((4, 1), 0, (5, 1), 1, False, False),
        ((6, 0), 0, (5, 1), 0, False, True),  # higher root, whatever else
        ((6, 2), 0, (5, 1), 0, False, True),
        ((6, 1), 0, (5, 2), 0, False, True),
        ((6, 1), 1, (5, 1), 0, False, True),
        ((6, 2), 1, (5, 1), 0, False, True),
        ((6, 1), 0, (5, 1), 1, False, True),
        ((5, 2), 1, (5, 1), 0, False, True),  # same root, higher sequence
        ((5, 2), 0, (5, 1), 1, False, True),
        ((5, 2), 0, (5, 1), 0, False, True),
        ((5, 1), 1, (5, 2), 0, False, False),  # same root, lower sequence
        ((5, 1), 0, (5, 2), 1, False, False),
        ((5, 1), 0, (5, 2), 0, False, False),
        ((5, 1), 1, (5, 1), 0, False, False),  # same root and sequence: earlier arrival wins
        ((5, 1), 0, (5, 1), 1, False, True),
        ((5, 1), 0, (5, 1), 0, False, False),
    ],
)
def test_parent_candidate(
    root: tuple[int, int], order: int, best: tuple[int, int], best_order: int, loop: bool, expected: bool
) -> None:
    ann = announcement((K(root[0]), root[1]), (1,), order=order, received_at=NOW)
    assert is_better_parent(ann, (K(best[0]), best[1]), best_order, loop=loop, now=NOW) is expected


def test_parent_candidate_expires() -> None:
    ann = announcement((K(6), 1), (1,), order=0, received_at=NOW - 90 * 60)
    assert not is_better_parent(ann, (K(5), 1), 0, loop=False, now=NOW)
    fresh = announcement((K(6), 1), (1,), order=0, received_at=NOW - ANNOUNCEMENT_TIMEOUT_S + 1)
    assert is_better_parent(fresh, (K(5), 1), 0, loop=False, now=NOW)


SELF_ROOT: Root = (K(5), 1)
OTHER_ROOT: Root = (K(4), 1)
VALID = announcement(SELF_ROOT, (3, 3))  # sent by a peer at [3]
DEST = announcement(SELF_ROOT, (1, 1, 1, 1))  # sent by the destination, at [1 1 1]
CLOSER = announcement(SELF_ROOT, (1, 1))  # sent by a peer at [1]
OTHER_ROOT_DEST = announcement(OTHER_ROOT, (1, 1, 1, 1))
FROM = 1


@pytest.mark.parametrize(
    ("ours", "anns", "expected"),
    [
        ((2,), {1: VALID}, None),  # the only peer is where the frame came from
        ((1, 1, 1), {1: VALID}, LOCAL_PORT),  # the destination is us
        ((2,), {1: VALID, 2: DEST, 3: CLOSER}, 2),  # a peer is the destination
        ((2,), {1: DEST}, None),  # never back to the sender, even if it is the destination
        ((2,), {1: VALID, 2: OTHER_ROOT_DEST}, None),  # peers on another root are ignored
        ((2,), {1: VALID, 2: VALID, 3: CLOSER}, 3),  # only a strictly closer peer counts
    ],
)
def test_next_hop_tree(ours: tuple[int, ...], anns: dict[int, object], expected: int | None) -> None:
    got = next_hop_tree((1, 1, 1), ours, FROM, SELF_ROOT, anns, {})  # type: ignore[arg-type]
    assert got == expected


def test_next_hop_tree_ties_prefer_faster_link_then_earlier_announcement() -> None:
    early = announcement(SELF_ROOT, (1, 1), order=1)
    late = announcement(SELF_ROOT, (1, 1), order=2)
    assert next_hop_tree((1, 1, 1), (2,), FROM, SELF_ROOT, {2: late, 3: early}, {}) == 3
    assert next_hop_tree((1, 1, 1), (2,), FROM, SELF_ROOT, {2: late, 3: early}, {2: 0, 3: 3}) == 2


@given(
    st.lists(st.integers(1, 300), max_size=6),
    st.dictionaries(st.integers(2, 5), st.lists(st.integers(1, 300), min_size=1, max_size=6), max_size=4),
    st.lists(st.integers(1, 300), min_size=1, max_size=40),
)
def test_a_deep_destination_routes_the_same_from_its_prefix(
    ours: list[int], peers: dict[int, list[int]], destination: list[int]
) -> None:
    """Routing on the first ports of a destination and its depth agrees with
    routing on all of it, whenever the prefix is longer than every coordinate."""
    anns = {port: announcement(SELF_ROOT, (*coords, 1)) for port, coords in peers.items()}
    needed = 1 + max([len(ours)] + [len(a.peer_coordinates) for a in anns.values()])
    whole = next_hop_tree(tuple(destination), tuple(ours), FROM, SELF_ROOT, anns, {})
    depth = len(destination)
    prefix = tuple(destination[:needed])
    assert next_hop_tree(prefix, tuple(ours), FROM, SELF_ROOT, anns, {}, depth) == whole
