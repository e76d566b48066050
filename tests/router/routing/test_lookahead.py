"""Lookahead: the two-hop decision, the neighbour claims between cores, and paths
in meshes where some nodes run it and some do not."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.routing.constants import MAX_CLAIMS
from router.routing.core import CoreConfig, RouterCore
from router.routing.lookahead import (
    claim_id,
    count_claims,
    next_hop_lookahead,
    pack_claims,
    tree_distance_to,
    unpack_claims,
)
from router.routing.outputs import ClosePeer, Output, SendFrame
from router.sim.mesh import Mesh
from router.sim.topology import Topology, random_graph
from router.wire import Identity, PublicKey, RootAnnouncement
from router.wire.extension import (
    MAX_NEIGHBOURS,
    Extension,
    ExtensionMessage,
    Neighbours,
    NeighboursGone,
    decode_extension,
    encode_neighbours,
    encode_neighbours_gone,
    is_extension_frame,
)
from tests.router.routing.routing_helpers import MID, T0, ordered_identities
from tests.router.routing.test_core import announcement_frame, rooted_at

LOOKAHEAD = CoreConfig(extensions=Extension.LOOKAHEAD)
IDS = ordered_identities()

# ---------------------------------------------------------------- the decision


def test_a_peer_next_to_the_destination_beats_a_peer_nearer_in_the_tree() -> None:
    # We are at (1,), the destination at (2, 1, 1): 4 tree hops away.  Peer 5 sits at
    # (1, 1) (5 hops), peer 6 at (2,) (2 hops); peer 5 is next to (2, 1, 1) itself.
    destination = (2, 1, 1)
    peers = {5: (1, 1), 6: (2,)}
    assert next_hop_lookahead(destination, 3, (1,), 0, peers, {}, {}) == 6
    assert next_hop_lookahead(destination, 3, (1,), 0, peers, {5: [(2, 1, 1)]}, {}) == 5


def test_the_port_a_frame_came_from_is_never_chosen() -> None:
    assert next_hop_lookahead((2, 1), 2, (1,), 5, {5: (2,)}, {5: [(2, 1)]}, {}) is None


def test_no_peer_better_than_we_are_is_none() -> None:
    assert next_hop_lookahead((1, 2), 2, (1,), 0, {5: (1, 1, 1)}, {5: [(1, 1, 1, 1)]}, {}) is None


def test_equal_values_go_to_the_better_rank() -> None:
    peers = {5: (2,), 6: (2,)}
    rank = {5: (3, 9), 6: (3, 2)}
    assert next_hop_lookahead((2, 1), 2, (1,), 0, peers, {}, rank) == 6


@given(
    st.lists(st.integers(1, 3), max_size=5).map(tuple),
    st.lists(st.integers(1, 3), max_size=5).map(tuple),
)
def test_tree_distance_is_hops_through_the_common_ancestor(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    common = 0
    while common < min(len(a), len(b)) and a[common] == b[common]:
        common += 1
    assert tree_distance_to(a, b, len(b)) == (len(a) - common) + (len(b) - common)


# ---------------------------------------------------------------- claims between two cores


def claims_from(outputs: Sequence[Output]) -> list[tuple[int, ExtensionMessage]]:
    return [
        (o.port, decode_extension(o.data))
        for o in outputs
        if isinstance(o, SendFrame) and is_extension_frame(o.data)
    ]


def test_a_core_tells_each_lookahead_peer_its_other_peers_and_withdraws_them() -> None:
    core = RouterCore(MID, T0, LOOKAHEAD)
    root = IDS[7]
    up, _ = core.add_peer(root.public_key, 3, T0, extensions=Extension.LOOKAHEAD)
    plain, _ = core.add_peer(IDS[5].public_key, 3, T0, extensions=0)
    side, _ = core.add_peer(IDS[6].public_key, 3, T0, extensions=Extension.LOOKAHEAD)
    core.handle_frame(up, announcement_frame(rooted_at(root, port=4)), T0)
    side_ann = rooted_at(root, port=2).with_hop(IDS[6], 7)
    core.handle_frame(side, announcement_frame(side_ann), T0)
    core.handle_frame(plain, announcement_frame(rooted_at(root, port=3).with_hop(IDS[5], 1)), T0)
    out = core.handle_timer(core.next_deadline())
    sent = dict(claims_from(out))
    assert plain not in sent  # a peering without the extension hears nothing of it
    to_up, to_side = sent[up], sent[side]
    assert isinstance(to_up, Neighbours) and isinstance(to_side, Neighbours)
    assert side_ann.raw in to_up.announcements and len(to_up.announcements) == 2
    assert len(to_side.announcements) == 2 and side_ann.raw not in to_side.announcements
    # Nothing changes: nothing more is sent.
    assert claims_from(core.handle_timer(T0 + 1)) == []
    # The plain peer goes: both lookahead peers are told.
    out = core.remove_peer(plain, T0 + 2) + core.handle_timer(T0 + 3)
    gone = dict(claims_from(out))
    assert gone[up] == NeighboursGone((IDS[5].public_key,))
    assert gone[side] == NeighboursGone((IDS[5].public_key,))


def receiver() -> tuple[RouterCore, int]:
    core = RouterCore(MID, T0, LOOKAHEAD)
    port, _ = core.add_peer(IDS[7].public_key, 3, T0, extensions=Extension.LOOKAHEAD)
    core.handle_frame(port, announcement_frame(rooted_at(IDS[7], port=4)), T0)
    core.take_outputs()
    return core, port


def test_claims_taken_are_the_neighbours_coordinates_under_their_root() -> None:
    core, port = receiver()
    neighbour = rooted_at(IDS[7], port=2).with_hop(IDS[6], 9)  # IDS[6] at (2,), its port 9 to the sender
    core.handle_frame(port, encode_neighbours(Neighbours((neighbour.raw,))), T0 + 1)
    assert list(core._claims_of(port)) == [claim_id(IDS[6].public_key)]
    assert core.neighbour_coordinates(core.root()) == {port: [(2,)]}
    assert core.neighbour_coordinates((IDS[6].public_key, 1)) == {}  # under another root: none
    core.handle_frame(port, encode_neighbours_gone(NeighboursGone((IDS[6].public_key,))), T0 + 2)
    assert core.neighbour_coordinates(core.root()) == {}
    core.remove_peer(port, T0 + 3)
    assert port not in core.neighbour_claims


def test_a_claim_with_a_bad_signature_closes_the_peering() -> None:
    core, port = receiver()
    raw = bytearray(rooted_at(IDS[7], port=2).with_hop(IDS[6], 9).raw)
    raw[-1] ^= 1
    out = core.handle_frame(port, encode_neighbours(Neighbours((bytes(raw),))), T0 + 1)
    assert [o.port for o in out if isinstance(o, ClosePeer)] == [port]
    assert core.drops["closed: bad signature"] == 1


def test_claims_from_a_peering_without_lookahead_are_dropped_and_counted() -> None:
    core = RouterCore(MID, T0, CoreConfig(extensions=Extension.PATH_REPAIR | Extension.LOOKAHEAD))
    port, _ = core.add_peer(IDS[7].public_key, 3, T0, extensions=Extension.PATH_REPAIR)
    frame = encode_neighbours(Neighbours((rooted_at(IDS[7], port=2).with_hop(IDS[6], 9).raw,)))
    assert core.handle_frame(port, frame, T0 + 1) == []
    assert core.drops["extension frame the peering did not negotiate"] == 1
    assert port in core.peers and not core.neighbour_claims


def test_claims_past_the_limits_are_dropped_and_counted() -> None:
    core, port = receiver()
    many = [
        rooted_at(IDS[7], port=2).with_hop(Identity.from_seed(bytes([i]) * 32), 9).raw
        for i in range(100, 100 + MAX_NEIGHBOURS + 2)
    ]
    core.handle_frame(port, encode_neighbours(Neighbours(tuple(many[:MAX_NEIGHBOURS]))), T0 + 1)
    core.handle_frame(port, encode_neighbours(Neighbours(tuple(many[MAX_NEIGHBOURS:]))), T0 + 1)
    assert len(core._claims_of(port)) == MAX_NEIGHBOURS
    assert core.drops["lookahead claims over the limit"] == 2
    assert MAX_CLAIMS >= 8 * MAX_NEIGHBOURS


def test_claims_of_ourselves_or_of_the_sender_are_not_kept() -> None:
    core, port = receiver()
    ours = rooted_at(IDS[7], port=2).with_hop(MID, 9).raw
    theirs = RootAnnouncement.create(IDS[7].public_key, 1).with_hop(IDS[7], 2).raw
    core.handle_frame(port, encode_neighbours(Neighbours((ours, theirs))), T0 + 1)
    assert not core._claims_of(port)
    assert core.drops["lookahead claim of ourselves or the sender"] == 2


# ---------------------------------------------------------------- meshes


def mesh_of(topology: Topology, seed: int, extended: set[str]) -> Mesh:
    mesh = Mesh(seed)
    for name in topology.nodes:
        if name in extended:
            mesh.node_configs[name] = LOOKAHEAD
        mesh.add_node(name)
    for a, b in topology.edges:
        mesh.link(a, b)
    mesh.run_for(30)
    return mesh


def tree_routed_hops(mesh: Mesh, pairs: list[tuple[str, str]]) -> list[int | None]:
    """For each pair (a, b): b sends to a first, so that a has b's coordinates; then
    a's frame to b goes by the tree.  The hops it took, or None if it was lost."""
    for a, b in pairs:
        mesh.send(b, mesh.nodes[a].core.key, b"prime")
    mesh.run_for(1)
    hops: dict[bytes, int] = {}

    def observe(_a: str, _b: str, data: bytes) -> None:
        if data[5] == 3 and data[-8:].startswith(b"t"):
            hops[data[-8:]] = hops.get(data[-8:], 0) + 1

    mesh.frame_observer = observe
    for i, (a, b) in enumerate(pairs):
        mesh.send(a, mesh.nodes[b].core.key, b"t" + i.to_bytes(7, "big"))
    mesh.run_for(2)
    mesh.frame_observer = None
    delivered = {d.payload for a, b in pairs for d in mesh.nodes[b].delivered if d.payload.startswith(b"t")}
    return [
        hops.get(tag) if (tag := b"t" + i.to_bytes(7, "big")) in delivered else None
        for i in range(len(pairs))
    ]


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.0, 1.0))
def test_every_frame_arrives_without_a_loop_whoever_runs_lookahead(seed: int, share: float) -> None:
    """Random graphs, a random share of the nodes with lookahead: every tree-routed
    frame arrives, in fewer hops than there are nodes."""
    rng = random.Random(seed)
    topology = random_graph(14, 8, rng)
    names = sorted(topology.nodes)
    extended = {n for n in names if rng.random() < share}
    mesh = mesh_of(topology, seed, extended)
    pairs = [tuple(rng.sample(names, 2)) for _ in range(20)]
    hops = tree_routed_hops(mesh, pairs)  # type: ignore[arg-type]
    assert all(h is not None and h < len(names) for h in hops), hops


def test_lookahead_shortens_paths_on_the_same_graph() -> None:
    rng = random.Random(11)
    topology = random_graph(30, 25, rng)
    names = sorted(topology.nodes)
    pairs = [tuple(rng.sample(names, 2)) for _ in range(60)]
    plain = tree_routed_hops(mesh_of(topology, 11, set()), pairs)  # type: ignore[arg-type]
    extended = mesh_of(topology, 11, set(names))
    looked = tree_routed_hops(extended, pairs)  # type: ignore[arg-type]
    assert None not in plain and None not in looked
    assert sum(looked) < sum(plain)  # type: ignore[arg-type]
    assert all(x <= y for x, y in zip(looked, plain, strict=True))  # type: ignore[operator]
    assert extended.nodes[names[0]].core.neighbour_coordinates(extended.nodes[names[0]].core.root())


@pytest.mark.parametrize("kind", ["neighbours", "gone"])
def test_a_claim_frame_sent_to_a_core_without_lookahead_is_dropped(kind: str) -> None:
    core = RouterCore(MID, T0)
    port, _ = core.add_peer(IDS[7].public_key, 3, T0, extensions=Extension.LOOKAHEAD)
    frame = (
        encode_neighbours(Neighbours(()))
        if kind == "neighbours"
        else encode_neighbours_gone(NeighboursGone((PublicKey(bytes(32)),)))
    )
    assert core.handle_frame(port, frame, T0 + 1) == []
    assert core.drops["extension frame on a peering without extensions"] == 1


def test_claims_under_another_root_are_dropped_and_a_new_root_voids_those_kept() -> None:
    core, port = receiver()
    neighbour = rooted_at(IDS[7], port=2).with_hop(IDS[6], 9)
    core.handle_frame(port, encode_neighbours(Neighbours((neighbour.raw,))), T0 + 1)
    elsewhere = rooted_at(IDS[5], port=2).with_hop(IDS[4], 9)
    core.handle_frame(port, encode_neighbours(Neighbours((elsewhere.raw,))), T0 + 1)
    assert core.drops["lookahead claim for another root"] == 1
    assert list(core._claims_of(port)) == [claim_id(IDS[6].public_key)]
    # The root announces a new sequence: what was claimed under the old one is void.
    core.handle_frame(port, announcement_frame(rooted_at(IDS[7], sequence=2, port=4)), T0 + 2)
    assert core.root() == (IDS[7].public_key, 2)
    assert core.neighbour_coordinates(core.root()) == {}


@given(st.dictionaries(st.binary(min_size=8, max_size=8), st.binary(max_size=255), max_size=70))
def test_packed_claims_unpack_to_themselves(claims: dict[bytes, bytes]) -> None:
    packed = pack_claims(claims)
    assert unpack_claims(packed) == claims
    assert count_claims(packed) == len(claims)
