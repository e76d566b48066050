"""The ordered walk over route entries decides exactly as a scan over all of them."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.snek import ENTRY_BOARDING_MARGIN_S, ENTRY_EXPIRY_S, RouteTable, SnakeEntry, next_hop_snek
from router.tree import LOCAL_PORT, PeerAnnouncement
from router.wire import FULL_WATERMARK, PublicKey, Watermark
from tests.router.routing_helpers import ZERO, K, announcement

NOW = 1000.0
ROOT = (K(14), 1)


def scan_next_hop(
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
) -> tuple[int | None, Watermark]:
    """The plain scan over every route entry that the ordered walk replaces."""
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
    for port, ann in announcements.items():
        for key in ann.signers:
            if (traffic and key == destination and best_key != destination) or (destination < key < best_key):
                best_key, best_seq, best_port, best_ann = key, 0, port, ann

    # 3. A direct peering with the best key beats reaching it through someone else.
    for port, ann in announcements.items():
        if peer_keys.get(port) == best_key:
            best_seq, best_port, best_ann = 0, port, ann

    # 4. Route entries from bootstraps, unless their watermark is worse than the frame's.
    for entry in routes.values():
        if entry.source not in peer_keys or not entry.valid(now):
            continue
        key = entry.key
        if key > watermark.key or (
            key == watermark.key and entry.sequence != 0 and entry.sequence < watermark.sequence
        ):
            continue
        if now - entry.last_seen > ENTRY_EXPIRY_S - ENTRY_BOARDING_MARGIN_S and not (
            key == watermark.key and entry.sequence == watermark.sequence
        ):
            continue  # about to expire: only a frame already riding it may go on
        if (traffic and key == destination and best_key != destination) or (destination < key < best_key):
            best_key, best_seq, best_port = key, entry.sequence, entry.source
            best_ann = announcements.get(entry.source)

    # 5. Among several links to the best key, the faster type, then the earlier announcement.
    if best_port is not None and best_ann is not None:
        for port, ann in announcements.items():
            if peer_keys.get(port) != best_key:
                continue
            kind, best_kind = link_types.get(port, 0), link_types.get(best_port, 0)
            if kind < best_kind or (
                kind == best_kind and ann.root == best_ann.root and ann.order < best_ann.order
            ):
                best_port, best_ann = port, ann

    return best_port, Watermark(PublicKey(best_key), best_seq)


keys = st.integers(1, 6).map(K)  # few keys, so that they often collide
ages = st.sampled_from([0.0, 4.0, ENTRY_EXPIRY_S - ENTRY_BOARDING_MARGIN_S, 9.0, ENTRY_EXPIRY_S])
entries = st.builds(
    lambda key, source, sequence, age: SnakeEntry(key, source, None, sequence, NOW - age, ROOT),
    keys,
    st.integers(1, 4),  # port 4 has no peer
    st.sampled_from([0, 50, 70]),
    ages,
)
watermarks = st.one_of(st.just(FULL_WATERMARK), st.builds(Watermark, keys, st.sampled_from([0, 50, 60, 70])))
announcements = st.dictionaries(
    st.integers(1, 3),
    st.lists(keys, max_size=3, unique=True).map(
        lambda signers: announcement(ROOT, tuple(range(1, len(signers) + 1)), tuple(signers))
    ),
)


@settings(max_examples=400, deadline=None)
@given(
    bootstrap=st.booleans(),
    destination=keys,
    ours=keys,
    watermark=watermarks,
    parent=st.sampled_from([None, 1]),
    anns=announcements,
    peers=st.dictionaries(st.integers(1, 3), st.one_of(st.just(ZERO), keys), min_size=1),
    route_list=st.lists(entries, max_size=10),
)
def test_ordered_walk_matches_the_scan(
    bootstrap: bool,
    destination: PublicKey,
    ours: PublicKey,
    watermark: Watermark,
    parent: int | None,
    anns: dict[int, PeerAnnouncement],
    peers: dict[int, PublicKey],
    route_list: list[SnakeEntry],
) -> None:
    table = RouteTable()
    for entry in route_list:
        table[entry.key] = entry
    common: dict[str, object] = dict(
        bootstrap=bootstrap,
        destination=destination,
        our_key=ours,
        watermark=watermark,
        parent=parent,
        root_key=ROOT[0],
        announcements=anns,
        peer_keys=peers,
        link_types={},
        now=NOW,
    )
    expected = scan_next_hop(routes=dict(table.items()), **common)  # type: ignore[arg-type]
    assert next_hop_snek(routes=table, ordered_routes=table.ordered, **common) == expected  # type: ignore[arg-type]
    assert next_hop_snek(routes=dict(table.items()), **common) == expected  # type: ignore[arg-type]


@given(st.lists(st.tuples(st.booleans(), keys)))
def test_route_table_keeps_its_keys_in_order(operations: list[tuple[bool, PublicKey]]) -> None:
    table = RouteTable()
    model: dict[bytes, SnakeEntry] = {}
    for add, key in operations:
        if add:
            table[key] = model[key] = SnakeEntry(key, 1, None, 0, NOW, ROOT)
        elif key in model:
            del table[key], model[key]
        assert [e.key for e in table.ordered] == list(table) == sorted(model)
        assert dict(table.items()) == model and len(table) == len(model)
        assert all((k in table) == (k in model) for k in (K(n) for n in range(1, 7)))
        assert all(table.get(k) == model.get(k) for k in (K(n) for n in range(1, 7)))
    with pytest.raises(ValueError, match="its own key"):
        table[K(1)] = SnakeEntry(K(2), 1, None, 0, NOW, ROOT)
    table.clear()
    assert not table and not table.ordered
