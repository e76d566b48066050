"""Path repair on one core: negotiation, path notices in and out, and the origin's repair."""

from __future__ import annotations

import pytest

from router.routing.constants import REPAIR_MIN_INTERVAL_S
from router.routing.core import CoreConfig, RouterCore
from router.routing.outputs import ClosePeer, Output, SendFrame
from router.routing.snek import SnakeEntry
from router.routing.tree import LOCAL_PORT
from router.sim.mesh import Mesh
from router.sim.topology import Topology, grid, ring
from router.wire import BootstrapFrame, FrameType, PublicKey, decode_frame
from router.wire.extension import (
    Direction,
    Extension,
    PathNotice,
    decode_extension,
    encode_path_notice,
    is_extension_frame,
)
from tests.router.routing.routing_helpers import MID, T0, ordered_identities
from tests.router.routing.test_core import announcement_frame, rooted_at

REPAIR = CoreConfig(extensions=Extension.PATH_REPAIR, verify_signatures=False)
IDS = ordered_identities()
ORIGIN = IDS[1].public_key


def sends(outputs: list[Output]) -> list[SendFrame]:
    return [o for o in outputs if isinstance(o, SendFrame)]


def notices(outputs: list[Output]) -> list[tuple[int, PathNotice]]:
    found = [(o.port, decode_extension(o.data)) for o in sends(outputs) if is_extension_frame(o.data)]
    return [(port, m) for port, m in found if isinstance(m, PathNotice)]


def core_with_peers(
    count: int, config: CoreConfig = REPAIR, announced: int = Extension.PATH_REPAIR
) -> tuple[RouterCore, list[int]]:
    core = RouterCore(MID, T0, config)
    ports = [core.add_peer(IDS[4 + i].public_key, 3, T0, extensions=announced)[0] for i in range(count)]
    core.take_outputs()
    return core, ports


def path(core: RouterCore, source: int, destination: int | None, sequence: int = 7) -> SnakeEntry:
    """A route entry for ORIGIN's bootstrap, in on ``source`` and out on ``destination``."""
    entry = SnakeEntry(PublicKey(ORIGIN), source, destination, sequence, T0, core.root())
    core.routes[ORIGIN] = entry
    return entry


def notice(direction: Direction, sequence: int = 7, origin: bytes = ORIGIN) -> bytes:
    return encode_path_notice(PathNotice(direction, PublicKey(origin), sequence))


# ---------------------------------------------------------------- negotiation


@pytest.mark.parametrize(
    ("ours", "theirs", "used"),
    [
        (Extension.PATH_REPAIR, Extension.PATH_REPAIR, Extension.PATH_REPAIR),
        (Extension.PATH_REPAIR, 0, 0),  # a reference node announces nothing
        (0, Extension.PATH_REPAIR, 0),
        (Extension.PATH_REPAIR, 0xFFFFFF, Extension.PATH_REPAIR),  # bits we do not know: ignored
    ],
)
def test_a_peering_uses_what_both_ends_announced(ours: int, theirs: int, used: int) -> None:
    core, (port,) = core_with_peers(1, CoreConfig(extensions=ours), theirs)
    assert core.peer_extensions.get(port, 0) == used
    core.remove_peer(port, T0 + 1)
    assert port not in core.peer_extensions


def test_an_extension_frame_on_a_plain_peering_is_dropped_and_counted_as_the_reference_would() -> None:
    core, (plain,) = core_with_peers(1, announced=0)
    out = core.handle_frame(plain, notice(Direction.TOWARDS_ORIGIN), T0 + 1)
    assert out == [] and plain in core.peers
    assert core.drops["extension frame on a peering without extensions"] == 1


def test_a_malformed_extension_frame_from_a_peer_that_announced_it_closes_the_peering() -> None:
    core, (port,) = core_with_peers(1)
    raw = bytearray(notice(Direction.TOWARDS_ORIGIN))
    raw[13] = 9  # no such direction
    out = core.handle_frame(port, bytes(raw), T0 + 1)
    assert [o.port for o in out if isinstance(o, ClosePeer)] == [port]
    assert core.drops["closed: malformed frame"] == 1


def test_an_extension_of_an_unknown_kind_is_dropped_and_counted() -> None:
    core, (port,) = core_with_peers(1)
    raw = bytearray(notice(Direction.TOWARDS_ORIGIN))
    raw[12] = 77
    assert core.handle_frame(port, bytes(raw), T0 + 1) == []
    assert port in core.peers and core.drops["extension frame of an unknown kind"] == 1


# ---------------------------------------------------------------- a link is lost


def test_a_lost_link_is_reported_along_every_path_that_crossed_it_both_ways() -> None:
    core, (a, b, c) = core_with_peers(3)
    path(core, source=a, destination=b)  # ORIGIN's path: in from a, out to b
    other = IDS[2].public_key
    core.routes[other] = SnakeEntry(PublicKey(other), b, c, 9, T0, core.root())  # in from b, out to c
    out = core.remove_peer(b, T0 + 1)
    assert sorted(notices(out)) == sorted(
        [
            (a, PathNotice(Direction.TOWARDS_ORIGIN, PublicKey(ORIGIN), 7)),
            (c, PathNotice(Direction.TOWARDS_END, PublicKey(other), 9)),
        ]
    )
    assert ORIGIN not in core.routes and other not in core.routes
    assert core.stats["path notices sent"] == 2


def test_no_notice_goes_to_a_peering_without_the_extension() -> None:
    core = RouterCore(MID, T0, REPAIR)
    plain, _ = core.add_peer(IDS[4].public_key, 3, T0, extensions=0)
    core.add_peer(IDS[5].public_key, 3, T0, extensions=Extension.PATH_REPAIR)
    lost, _ = core.add_peer(IDS[6].public_key, 3, T0, extensions=Extension.PATH_REPAIR)
    path(core, source=plain, destination=lost)
    assert notices(core.remove_peer(lost, T0 + 1)) == []


def test_a_node_without_the_extension_sends_no_notice() -> None:
    core, (a, b) = core_with_peers(2, CoreConfig(verify_signatures=False))
    path(core, source=a, destination=b)
    assert notices(core.remove_peer(b, T0 + 1)) == []


# ---------------------------------------------------------------- notices in


def test_a_notice_towards_the_origin_is_passed_back_once_and_the_entry_kept() -> None:
    core, (a, b) = core_with_peers(2)
    path(core, source=a, destination=b)
    out = core.handle_frame(b, notice(Direction.TOWARDS_ORIGIN), T0 + 1)
    assert notices(out) == [(a, PathNotice(Direction.TOWARDS_ORIGIN, PublicKey(ORIGIN), 7))]
    assert ORIGIN in core.routes
    again = core.handle_frame(b, notice(Direction.TOWARDS_ORIGIN), T0 + 1.1)
    assert notices(again) == [] and core.drops["path notice: passed on before"] == 1


def test_a_notice_towards_the_end_removes_the_entry_and_is_passed_on() -> None:
    core, (a, b) = core_with_peers(2)
    path(core, source=a, destination=b)
    out = core.handle_frame(a, notice(Direction.TOWARDS_END), T0 + 1)
    assert notices(out) == [(b, PathNotice(Direction.TOWARDS_END, PublicKey(ORIGIN), 7))]
    assert ORIGIN not in core.routes


def test_a_notice_that_ends_a_path_here_clears_the_descending_node() -> None:
    core, (a,) = core_with_peers(1)
    entry = path(core, source=a, destination=None)
    core.descending = entry
    core.handle_frame(a, notice(Direction.TOWARDS_END), T0 + 1)
    assert core.descending is None and ORIGIN not in core.routes


@pytest.mark.parametrize(
    ("direction", "from_source", "sequence", "origin", "drop"),
    [
        (Direction.TOWARDS_ORIGIN, True, 7, ORIGIN, "path notice: not from the path"),
        (Direction.TOWARDS_END, False, 7, ORIGIN, "path notice: not from the path"),
        (Direction.TOWARDS_ORIGIN, False, 6, ORIGIN, "path notice: no such path"),
        (Direction.TOWARDS_END, True, 8, ORIGIN, "path notice: no such path"),
        (Direction.TOWARDS_END, True, 7, IDS[2].public_key, "path notice: no such path"),
    ],
)
def test_a_notice_that_does_not_name_a_path_through_its_sender_is_dropped_and_counted(
    direction: Direction, from_source: bool, sequence: int, origin: bytes, drop: str
) -> None:
    core, (a, b) = core_with_peers(2)
    path(core, source=a, destination=b)
    out = core.handle_frame(a if from_source else b, notice(direction, sequence, origin), T0 + 1)
    assert notices(out) == [] and ORIGIN in core.routes
    assert core.drops[drop] == 1
    assert not [o for o in out if isinstance(o, ClosePeer)]


def test_a_peer_that_floods_notices_is_held_to_its_budget() -> None:
    small = CoreConfig(
        extensions=Extension.PATH_REPAIR, signature_checks_burst=100, signature_checks_per_s=10
    )
    core, (_, b) = core_with_peers(2, small)
    frame = notice(Direction.TOWARDS_ORIGIN, origin=IDS[2].public_key)
    for _ in range(110):
        core.handle_frame(b, frame, T0 + 1)
    assert core.drops["path notice: no such path"] == 100
    assert core.drops["over budget: path notice"] == 10
    assert b in core.peers


# ---------------------------------------------------------------- the origin


def bootstrapped(core: RouterCore, now: float) -> tuple[int, int]:
    """Make the core a child of its first peer and have it bootstrap; (port, sequence)."""
    core._bootstrap_now(now)
    assert core._last_bootstrap_port is not None
    return core._last_bootstrap_port, core._last_bootstrap_sequence


def bootstraps(outputs: list[Output]) -> list[SendFrame]:
    return [o for o in sends(outputs) if o.data[5] == FrameType.BOOTSTRAP]


@pytest.fixture
def child() -> RouterCore:
    """A core below a stronger root, so that it bootstraps."""
    core, (up,) = core_with_peers(1)
    core.handle_frame(up, announcement_frame(rooted_at(IDS[4], port=3)), T0)
    core.take_outputs()
    assert core.parent == up
    return core


def test_the_origin_bootstraps_again_at_once_when_its_path_breaks(child: RouterCore) -> None:
    port, sequence = bootstrapped(child, T0 + 1)
    child.take_outputs()
    mine = encode_path_notice(PathNotice(Direction.TOWARDS_ORIGIN, child.key, sequence))
    out = child.handle_frame(port, mine, T0 + 2)
    sent = bootstraps(out)
    assert len(sent) == 1 and child.stats["path repairs"] == 1
    frame = decode_frame(sent[0].data)
    assert isinstance(frame, BootstrapFrame) and frame.destination_key == child.key
    # A second notice within the interval waits for the next maintenance tick.
    _, newer = child._last_bootstrap_port, child._last_bootstrap_sequence
    again = encode_path_notice(PathNotice(Direction.TOWARDS_ORIGIN, child.key, newer))
    assert bootstraps(child.handle_frame(port, again, T0 + 2 + REPAIR_MIN_INTERVAL_S / 2)) == []
    assert child.drops["path repair: deferred to the next tick"] == 1
    assert child.next_deadline() <= T0 + 3


def test_the_origin_ignores_a_notice_for_an_older_bootstrap_or_from_another_peer(child: RouterCore) -> None:
    port, sequence = bootstrapped(child, T0 + 1)
    other, _ = child.add_peer(IDS[6].public_key, 3, T0 + 1, extensions=Extension.PATH_REPAIR)
    child.take_outputs()
    stale = encode_path_notice(PathNotice(Direction.TOWARDS_ORIGIN, child.key, sequence - 1))
    elsewhere = encode_path_notice(PathNotice(Direction.TOWARDS_ORIGIN, child.key, sequence))
    assert bootstraps(child.handle_frame(port, stale, T0 + 2)) == []
    assert bootstraps(child.handle_frame(other, elsewhere, T0 + 2)) == []
    assert child.drops["path notice: not our last bootstrap"] == 2
    assert child.stats["path repairs"] == 0


def test_losing_the_link_our_bootstrap_took_repairs_at_once_over_another() -> None:
    core = RouterCore(MID, T0, REPAIR)
    up, _ = core.add_peer(IDS[7].public_key, 3, T0, extensions=Extension.PATH_REPAIR)
    core.handle_frame(up, announcement_frame(rooted_at(IDS[7], port=3)), T0)
    # The key just above ours, a child of the same root: our bootstrap, which
    # looks for the lowest key above ours, goes there first.
    above, _ = core.add_peer(IDS[4].public_key, 3, T0, extensions=Extension.PATH_REPAIR)
    core.handle_frame(above, announcement_frame(rooted_at(IDS[7], port=2).with_hop(IDS[4], 1)), T0)
    core.take_outputs()
    assert core.parent == up
    core._bootstrap_now(T0 + 2)
    assert core._last_bootstrap_port == above
    core.take_outputs()
    sent = bootstraps(core.remove_peer(above, T0 + 3))
    assert core.stats["path repairs"] == 1
    assert [s.port for s in sent] == [up]


def test_without_the_extension_a_lost_first_hop_waits_for_the_next_bootstrap() -> None:
    core = RouterCore(MID, T0, CoreConfig(verify_signatures=False, settle_window_s=0))
    up, _ = core.add_peer(IDS[7].public_key, 3, T0)
    core.handle_frame(up, announcement_frame(rooted_at(IDS[7], port=3)), T0)
    above, _ = core.add_peer(IDS[4].public_key, 3, T0)
    core.handle_frame(above, announcement_frame(rooted_at(IDS[7], port=2).with_hop(IDS[4], 1)), T0)
    core._bootstrap_now(T0 + 2)
    assert core._last_bootstrap_port == above
    core.take_outputs()
    assert bootstraps(core.remove_peer(above, T0 + 3)) == []


# ---------------------------------------------------------------- in a mesh


def repairing_mesh(seed: int, topology: Topology, extended: set[str] | None = None) -> Mesh:
    """A mesh whose nodes (or only ``extended``) announce path repair."""
    config = CoreConfig(extensions=Extension.PATH_REPAIR)
    mesh = Mesh(seed)
    for name in topology.nodes:
        if extended is None or name in extended:
            mesh.node_configs[name] = config
        mesh.add_node(name)
    for a, b in topology.edges:
        mesh.link(a, b)
    return mesh


def bootstrap_path(mesh: Mesh, origin: str) -> list[str]:
    """The nodes ``origin``'s last bootstrap went through, in order, from the route entries."""
    key = mesh.nodes[origin].core.key
    port = mesh.nodes[origin].core._last_bootstrap_port
    here, hops = origin, [origin]
    while port is not None and port != LOCAL_PORT:
        link = mesh.nodes[here].ports[port]
        here = link.b if link.a == here else link.a
        hops.append(here)
        entry = mesh.nodes[here].core.routes.get(key)
        port = entry.destination if entry is not None else None
    return hops


def ancestors(mesh: Mesh, name: str) -> set[str]:
    """The nodes on ``name``'s way up the tree, the root included."""
    out: set[str] = set()
    here = name
    while (parent := mesh.nodes[here].core.parent) is not None:
        link = mesh.nodes[here].ports[parent]
        here = link.b if link.a == here else link.a
        out.add(here)
    return out


def test_when_a_node_on_a_bootstrap_path_leaves_its_origin_repairs_within_a_round_trip() -> None:
    mesh = repairing_mesh(3, grid(4, 3))
    mesh.run_for(30)
    # An origin whose bootstrap path crosses at least two other nodes, where the
    # second is a leaf of the spanning tree: losing it breaks bootstrap paths
    # and nothing else (a node inside the tree would move others in the tree,
    # which sets them bootstrapping anyway).
    inner = set().union(*(ancestors(mesh, n) for n in mesh.nodes))
    origin, hops = next(
        (n, p) for n in sorted(mesh.nodes) if len(p := bootstrap_path(mesh, n)) >= 4 and p[2] not in inner
    )
    core = mesh.nodes[origin].core
    repairs = core.stats["path repairs"]
    gone = hops[2]
    mesh.remove_node(gone)
    left_at = mesh.now
    mesh.run_until(left_at + 0.2, stop=lambda: core.stats["path repairs"] > repairs)
    # The node before the break told the origin, one hop back: at most 50 ms a link.
    assert core.stats["path repairs"] == repairs + 1
    assert mesh.now - left_at <= 0.1
    mesh.run_for(0.5)
    assert gone not in bootstrap_path(mesh, origin)
    # From then on, a frame for the origin's key reaches it from every node.
    before = len(mesh.nodes[origin].delivered)
    for name in mesh.nodes:
        if name != origin:
            mesh.send(name, core.key, b"after the repair")
    mesh.run_for(1)
    assert len(mesh.nodes[origin].delivered) - before == len(mesh.nodes) - 1


def test_a_node_that_joins_between_two_neighbours_on_the_snake_is_found_at_once() -> None:
    """S's descending node was P; N joins with a key between them.  S tells P,
    which bootstraps again at once, and N becomes P's successor."""
    p, n, s, root = IDS[2], IDS[4], IDS[5], IDS[7]
    mesh = Mesh(4)
    mesh.node_configs.update({name: REPAIR for name in ("p", "n", "s", "root")})
    for name, ident in (("p", p), ("s", s), ("root", root)):
        mesh.add_node(name, ident)
    mesh.link("p", "root")
    mesh.link("s", "root")
    mesh.run_for(30)
    descending = mesh.nodes["s"].core.descending
    assert descending is not None and descending.key == p.public_key
    repairs = mesh.nodes["p"].core.stats["path repairs"]
    mesh.add_node("n", n)
    mesh.link("n", "root")
    s_core, n_core = mesh.nodes["s"].core, mesh.nodes["n"].core

    def descends(core: RouterCore, key: bytes) -> bool:
        return core.descending is not None and core.descending.key == key

    mesh.run_until(mesh.now + 2, stop=lambda: descends(s_core, n.public_key))
    taken = mesh.now
    assert descends(s_core, n.public_key)
    mesh.run_until(taken + 0.2, stop=lambda: descends(n_core, p.public_key))
    # S told P along P's path (two hops), and P's new bootstrap ended at N: two
    # round trips at most, where the reference waits for P's next periodic bootstrap.
    assert descends(n_core, p.public_key)
    assert mesh.nodes["p"].core.stats["path repairs"] == repairs + 1


def test_a_mixed_mesh_sends_extension_frames_only_between_nodes_that_announced_them() -> None:
    topology = ring(12)
    extended = {name for i, name in enumerate(sorted(topology.nodes)) if i % 2 == 0 or i < 4}
    mesh = repairing_mesh(5, topology, extended)
    seen: list[tuple[str, str]] = []
    mesh.frame_observer = lambda a, b, data: seen.append((a, b)) if is_extension_frame(data) else None
    mesh.run_for(30)
    for victim in sorted(mesh.nodes)[5::4]:
        mesh.remove_node(victim)
        mesh.run_for(3)
    assert seen, "no node sent a path notice: the test shows nothing"
    assert all(a in extended and b in extended for a, b in seen)
