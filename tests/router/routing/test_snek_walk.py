"""The ordered walk over route entries picks exactly what a scan over all of them picks."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.routing.constants import ENTRY_BOARDING_MARGIN_S, ENTRY_EXPIRY_S
from router.routing.snek import (
    RouteTable,
    SignerIndex,
    SnakeEntry,
    entry_usable,
    lowest_usable_entry,
    next_hop_snek,
)
from router.routing.tree import PeerAnnouncement
from router.wire import FULL_WATERMARK, PublicKey, Watermark
from tests.router.routing.routing_helpers import ZERO, K, announcement

NOW = 1000.0
ROOT = (K(14), 1)


def scan(
    entries: list[SnakeEntry],
    *,
    destination: PublicKey,
    best_key: PublicKey,
    traffic: bool,
    watermark: Watermark,
    peers: dict[int, PublicKey],
) -> SnakeEntry | None:
    """The reference's way: try every entry in turn (in whatever order), keeping the better."""
    found = None
    for entry in entries:
        if not entry_usable(entry, watermark, peers, NOW):
            continue
        if (traffic and entry.key == destination and best_key != destination) or (
            destination < entry.key < best_key
        ):
            found, best_key = entry, entry.key
    return found


def table_of(route_list: list[SnakeEntry]) -> RouteTable:
    """A route table holding ``route_list`` (the last entry for a key wins)."""
    table = RouteTable()
    for entry in route_list:
        table[entry.key] = entry
    return table


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
    traffic=st.booleans(),
    destination=keys,
    watermark=watermarks,
    peers=st.dictionaries(st.integers(1, 3), st.one_of(st.just(ZERO), keys), min_size=1),
    route_list=st.lists(entries, max_size=10),
    data=st.data(),
)
def test_ordered_walk_matches_the_scan(
    traffic: bool,
    destination: PublicKey,
    watermark: Watermark,
    peers: dict[int, PublicKey],
    route_list: list[SnakeEntry],
    data: st.DataObject,
) -> None:
    # The best key so far: often the destination itself (found among ancestors or peers).
    best_key = data.draw(st.one_of(st.just(destination), keys, st.just(ROOT[0])))
    table = table_of(route_list)
    shuffled = data.draw(st.permutations(list(table.values())))
    expected = scan(
        shuffled,
        destination=destination,
        best_key=best_key,
        traffic=traffic,
        watermark=watermark,
        peers=peers,
    )
    found = lowest_usable_entry(
        table.ordered,
        destination=destination,
        best_key=best_key,
        traffic=traffic,
        watermark=watermark,
        peer_keys=peers,
        now=NOW,
    )
    assert found == expected


@given(
    bootstrap=st.booleans(),
    destination=keys,
    ours=keys,
    watermark=watermarks,
    anns=announcements,
    route_list=st.lists(entries, max_size=10),
)
def test_a_route_table_and_a_plain_dict_route_alike(
    bootstrap: bool,
    destination: PublicKey,
    ours: PublicKey,
    watermark: Watermark,
    anns: dict[int, PeerAnnouncement],
    route_list: list[SnakeEntry],
) -> None:
    table = table_of(route_list)

    def hop(routes: Mapping[bytes, SnakeEntry]) -> tuple[int | None, Watermark]:
        return next_hop_snek(
            bootstrap=bootstrap,
            destination=destination,
            our_key=ours,
            watermark=watermark,
            parent=1,
            root_key=ROOT[0],
            announcements=anns,
            peer_keys={1: ZERO, 2: ZERO, 3: ZERO},
            link_types={},
            routes=routes,
            now=NOW,
        )

    assert hop(table) == hop(dict(table.items()))


many_announcements = st.dictionaries(
    st.integers(1, 6),
    st.lists(keys, min_size=1, max_size=4, unique=True).map(
        lambda signers: announcement(ROOT, tuple(range(1, len(signers) + 1)), tuple(signers))
    ),
    min_size=1,
)


@settings(max_examples=400, deadline=None)
@given(
    bootstrap=st.booleans(),
    destination=keys,
    ours=keys,
    watermark=watermarks,
    anns=many_announcements,
    parent=st.one_of(st.none(), st.integers(1, 6)),
    peers=st.dictionaries(st.integers(1, 6), st.one_of(st.just(ZERO), keys)),
    route_list=st.lists(entries, max_size=6),
)
def test_the_signer_index_picks_what_the_scan_picks(
    bootstrap: bool,
    destination: PublicKey,
    ours: PublicKey,
    watermark: Watermark,
    anns: dict[int, PeerAnnouncement],
    parent: int | None,
    peers: dict[int, PublicKey],
    route_list: list[SnakeEntry],
) -> None:
    table = table_of(route_list)

    def hop(signers: SignerIndex | None) -> tuple[int | None, Watermark]:
        return next_hop_snek(
            bootstrap=bootstrap,
            destination=destination,
            our_key=ours,
            watermark=watermark,
            parent=parent if parent in anns else None,
            root_key=ROOT[0],
            announcements=anns,
            peer_keys=peers,
            link_types={},
            routes=table,
            now=NOW,
            signers=signers,
        )

    index = SignerIndex.build(anns, peers, minimum=0)
    assert index is not None and index.keys == sorted({k for a in anns.values() for k in a.signers})
    assert hop(index) == hop(None)


def test_a_node_with_few_signers_goes_without_an_index() -> None:
    few = {1: announcement(ROOT, (1, 2), (K(14), K(3)))}
    assert SignerIndex.build(few, {1: K(3)}) is None
    assert SignerIndex.build(few, {1: K(3)}, minimum=2) is not None


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
