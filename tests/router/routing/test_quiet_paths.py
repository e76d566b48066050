"""Quiet paths on one core and in meshes: the end confirms, the path keeps its
entries longer, the origin bootstraps less often, and nothing of it reaches a
node that did not announce it."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import pytest

from router.routing.constants import (
    BOOTSTRAP_INTERVAL_S,
    ENTRY_EXPIRY_S,
    QUIET_BOOTSTRAP_INTERVAL_S,
    QUIET_ENTRY_EXPIRY_S,
)
from router.routing.core import CoreConfig, RouterCore
from router.routing.outputs import Output
from router.routing.quiet_state import MOVED_GRACE_S
from router.routing.snek import SnakeEntry
from router.sim.mesh import Mesh
from router.sim.topology import grid
from router.wire import PublicKey
from router.wire.extension import (
    Extension,
    PathConfirmed,
    PathMoved,
    decode_extension,
    encode_path_word,
    is_extension_frame,
)
from router.wire.snake import sign_bootstrap
from tests.router.routing.routing_helpers import MID, T0, ordered_identities
from tests.router.routing.test_core import announcement_frame, bootstrap_frame, rooted_at
from tests.router.routing.test_repair import ORIGIN, bootstrap_path, bootstraps, path, sends

QUIET = Extension.PATH_REPAIR | Extension.QUIET_PATHS
CONFIG = CoreConfig(extensions=QUIET, verify_signatures=False)
IDS = ordered_identities()


def confirmations(outputs: list[Output]) -> list[tuple[int, PathConfirmed]]:
    found = [(o.port, decode_extension(o.data)) for o in sends(outputs) if is_extension_frame(o.data)]
    return [(port, m) for port, m in found if isinstance(m, PathConfirmed)]


def moves(outputs: list[Output]) -> list[tuple[int, PathMoved]]:
    found = [(o.port, decode_extension(o.data)) for o in sends(outputs) if is_extension_frame(o.data)]
    return [(port, m) for port, m in found if isinstance(m, PathMoved)]


def core_with_peers(*announced: int, config: CoreConfig = CONFIG) -> tuple[RouterCore, list[int]]:
    core = RouterCore(MID, T0, config)
    ports = [
        core.add_peer(IDS[4 + i].public_key, 3, T0, extensions=bits)[0] for i, bits in enumerate(announced)
    ]
    core.take_outputs()
    return core, ports


def confirmed(sequence: int = 7, origin: bytes = ORIGIN) -> bytes:
    return encode_path_word(PathConfirmed(PublicKey(origin), sequence))


def moved(sequence: int = 7, origin: bytes = ORIGIN) -> bytes:
    return encode_path_word(PathMoved(PublicKey(origin), sequence))


# ---------------------------------------------------------------- at the end


def test_the_end_of_a_bootstrap_confirms_it_when_its_origin_becomes_our_descending_node() -> None:
    core, (a,) = core_with_peers(QUIET)
    bootstrap = sign_bootstrap(IDS[1], 42, *core.root())
    out = core.handle_frame(a, bootstrap_frame(IDS[1], bootstrap.encode()), T0 + 1)
    assert confirmations(out) == [(a, PathConfirmed(PublicKey(ORIGIN), 42))]
    assert core.descending is not None and core.descending.lifetime == QUIET_ENTRY_EXPIRY_S
    assert core.routes[ORIGIN] == core.descending


def test_a_bootstrap_that_ends_here_short_of_a_closer_node_we_know_is_not_confirmed() -> None:
    """We know a node between its origin and us, but no way to it: the origin
    has not found its successor, and must keep looking on the reference's schedule."""
    core, (a,) = core_with_peers(QUIET)
    closer = SnakeEntry(IDS[2].public_key, 99, None, 5, T0, core.root())
    core.routes[closer.key] = closer
    core.descending = closer
    bootstrap = sign_bootstrap(IDS[1], 42, *core.root())
    out = core.handle_frame(a, bootstrap_frame(IDS[1], bootstrap.encode()), T0 + 1)
    assert confirmations(out) == []
    assert core.routes[ORIGIN].lifetime == ENTRY_EXPIRY_S
    assert core.stats["bootstraps ended here, not confirmed"] == 1


def test_a_plain_peering_gets_no_confirmation() -> None:
    core, (a,) = core_with_peers(Extension.PATH_REPAIR)
    bootstrap = sign_bootstrap(IDS[1], 42, *core.root())
    assert confirmations(core.handle_frame(a, bootstrap_frame(IDS[1], bootstrap.encode()), T0 + 1)) == []
    assert core.routes[ORIGIN].lifetime == ENTRY_EXPIRY_S


# ---------------------------------------------------------------- along the path


def test_a_confirmation_lengthens_the_entry_and_goes_back_towards_the_origin_once() -> None:
    core, (a, b) = core_with_peers(QUIET, QUIET)
    path(core, source=a, destination=b)
    out = core.handle_frame(b, confirmed(), T0 + 1)
    assert confirmations(out) == [(a, PathConfirmed(PublicKey(ORIGIN), 7))]
    entry = core.routes[ORIGIN]
    assert entry.lifetime == QUIET_ENTRY_EXPIRY_S and entry.last_seen == T0
    assert entry.valid(T0 + ENTRY_EXPIRY_S + 1) and not entry.valid(T0 + QUIET_ENTRY_EXPIRY_S)
    # Once per path.
    assert confirmations(core.handle_frame(b, confirmed(), T0 + 2)) == []
    assert core.drops["path confirmation: confirmed before"] == 1
    assert core.stats["path confirmations passed on"] == 1


@pytest.mark.parametrize(
    ("from_end", "sequence", "origin", "drop", "undone"),
    [
        (False, 7, ORIGIN, "path confirmation: not from the path", False),
        # A newer or older path of the origin goes the same way: it replaces
        # (or was replaced by) the entries beyond us itself.
        (True, 6, ORIGIN, "path confirmation: no such path", False),
        (True, 8, ORIGIN, "path confirmation: no such path", False),
        # No path of that origin here: those beyond us must not keep theirs long.
        (True, 7, IDS[2].public_key, "path confirmation: no such path", True),
    ],
)
def test_a_confirmation_that_does_not_name_a_path_through_its_sender_changes_nothing(
    from_end: bool, sequence: int, origin: bytes, drop: str, undone: bool
) -> None:
    core, (a, b) = core_with_peers(QUIET, QUIET)
    path(core, source=a, destination=b)
    out = core.handle_frame(b if from_end else a, confirmed(sequence, origin), T0 + 1)
    assert confirmations(out) == []
    assert moves(out) == ([(b, PathMoved(PublicKey(origin), sequence))] if undone else [])
    assert core.routes[ORIGIN].lifetime == ENTRY_EXPIRY_S
    assert core.drops[drop] == 1


def test_a_confirmation_stops_where_the_way_back_does_not_take_it_and_is_undone_beyond() -> None:
    """Its origin will not hear of it and keeps the reference's schedule: so
    do the entries of its path."""
    core, (a, b) = core_with_peers(Extension.PATH_REPAIR, QUIET)
    path(core, source=a, destination=b)
    out = core.handle_frame(b, confirmed(), T0 + 1)
    assert confirmations(out) == []
    assert core.routes[ORIGIN].lifetime == ENTRY_EXPIRY_S
    # Those beyond us, which kept theirs long, are told to keep them no longer.
    assert moves(out) == [(b, PathMoved(PublicKey(ORIGIN), 7))]
    assert core.stats["path confirmations stopped"] == 1


@pytest.mark.parametrize(
    ("ours", "theirs", "drop"),
    [
        (QUIET, Extension.PATH_REPAIR, "extension frame the peering did not negotiate"),
        (Extension.PATH_REPAIR, QUIET, "extension frame the peering did not negotiate"),
        (QUIET, Extension.QUIET_PATHS, "path confirmation: the peering has no path repair"),
        (QUIET, 0, "extension frame on a peering without extensions"),
    ],
)
def test_a_confirmation_on_a_peering_that_did_not_negotiate_both_is_dropped_and_counted(
    ours: int, theirs: int, drop: str
) -> None:
    config = CoreConfig(extensions=ours, verify_signatures=False)
    core, (a, b) = core_with_peers(QUIET, theirs, config=config)
    path(core, source=a, destination=b)
    assert confirmations(core.handle_frame(b, confirmed(), T0 + 1)) == []
    assert core.routes[ORIGIN].lifetime == ENTRY_EXPIRY_S
    assert core.drops[drop] == 1
    assert b in core.peers


def test_a_peer_that_floods_confirmations_is_held_to_its_budget() -> None:
    small = CoreConfig(
        extensions=QUIET, verify_signatures=False, signature_checks_burst=100, signature_checks_per_s=10
    )
    core, (_, b) = core_with_peers(QUIET, QUIET, config=small)
    frame = confirmed(origin=IDS[2].public_key)
    for _ in range(110):
        core.handle_frame(b, frame, T0 + 1)
    assert core.drops["path confirmation: no such path"] == 100
    assert core.drops["over budget: path confirmation"] == 10
    assert b in core.peers


# ---------------------------------------------------------------- paths that moved


def test_a_newer_bootstrap_that_leaves_a_confirmed_path_sends_the_old_one_word() -> None:
    core, (a, b, c) = core_with_peers(QUIET, QUIET, QUIET)
    path(core, source=a, destination=b)
    core.handle_frame(b, confirmed(), T0 + 1)
    # The next bootstrap of the same origin comes in on c and ends here.
    bootstrap = sign_bootstrap(IDS[1], 8, *core.root())
    out = core.handle_frame(c, bootstrap_frame(IDS[1], bootstrap.encode()), T0 + 30)
    assert moves(out) == [(b, PathMoved(PublicKey(ORIGIN), 7))]


def test_a_newer_bootstrap_on_the_same_way_or_over_an_unconfirmed_path_sends_nothing() -> None:
    core, (a, b, c) = core_with_peers(QUIET, QUIET, QUIET)
    path(core, source=a, destination=b)  # never confirmed
    bootstrap = sign_bootstrap(IDS[1], 8, *core.root())
    assert moves(core.handle_frame(c, bootstrap_frame(IDS[1], bootstrap.encode()), T0 + 3)) == []


def test_a_moved_path_lives_as_a_stale_reference_entry_would_and_the_word_goes_on() -> None:
    core, (a, b) = core_with_peers(QUIET, QUIET)
    path(core, source=a, destination=b)
    core.handle_frame(b, confirmed(), T0 + 1)
    out = core.handle_frame(a, moved(), T0 + 20)
    assert moves(out) == [(b, PathMoved(PublicKey(ORIGIN), 7))]
    entry = core.routes[ORIGIN]
    assert entry.valid(T0 + 20 + MOVED_GRACE_S - 0.1) and not entry.valid(T0 + 20 + MOVED_GRACE_S)


def test_at_the_end_a_moved_path_is_shortened_and_goes_no_further() -> None:
    core, (a,) = core_with_peers(QUIET)
    bootstrap = sign_bootstrap(IDS[1], 42, *core.root())
    core.handle_frame(a, bootstrap_frame(IDS[1], bootstrap.encode()), T0)
    assert core.descending is not None and core.descending.lifetime == QUIET_ENTRY_EXPIRY_S
    out = core.handle_frame(a, moved(42), T0 + 3)
    assert moves(out) == []
    # Installed 3 s ago: it lives as a reference entry would, 10 s in all
    # (never less: its origin may be on the reference's schedule).
    assert core.descending is not None and core.descending.valid(T0 + ENTRY_EXPIRY_S - 0.1)
    assert not core.descending.valid(T0 + ENTRY_EXPIRY_S)


@pytest.mark.parametrize(
    ("from_source", "sequence", "drop"),
    [(False, 7, "path moved: not from the path"), (True, 6, "path moved: no such path")],
)
def test_a_moved_word_that_does_not_name_a_path_through_its_sender_changes_nothing(
    from_source: bool, sequence: int, drop: str
) -> None:
    core, (a, b) = core_with_peers(QUIET, QUIET)
    path(core, source=a, destination=b)
    core.handle_frame(b, confirmed(), T0 + 1)
    assert moves(core.handle_frame(a if from_source else b, moved(sequence), T0 + 20)) == []
    assert core.routes[ORIGIN].lifetime == QUIET_ENTRY_EXPIRY_S
    assert core.drops[drop] == 1


def test_a_confirmation_that_comes_after_a_newer_bootstrap_went_elsewhere_is_undone() -> None:
    """The path beyond us was confirmed for a bootstrap we no longer carry on
    that way: the word goes back along it so that it does not live long."""
    core, (a, b, c) = core_with_peers(QUIET, QUIET, QUIET)
    path(core, source=a, destination=c, sequence=8)
    out = core.handle_frame(b, confirmed(7), T0 + 1)
    assert moves(out) == [(b, PathMoved(PublicKey(ORIGIN), 7))]
    assert core.drops["path confirmation: no such path"] == 1


# ---------------------------------------------------------------- the origin


def child(announced: int = QUIET) -> tuple[RouterCore, int]:
    """A core below a stronger root, so that it bootstraps, on the reference's
    schedule once it has settled."""
    config = CoreConfig(extensions=QUIET, verify_signatures=False, peer_timeouts=False)
    core, (up,) = core_with_peers(announced, config=config)
    core.handle_frame(up, announcement_frame(rooted_at(IDS[4], port=3)), T0)
    core.take_outputs()
    assert core.parent == up
    return core, up


def confirmed_bootstrap(core: RouterCore, up: int, now: float) -> None:
    core._bootstrap_now(now)
    core.take_outputs()
    core.handle_frame(up, confirmed(core._last_bootstrap_sequence, core.key), now + 0.05)
    assert core._confirmed_sequence == core._last_bootstrap_sequence


def waits(core: RouterCore, up: int, start: float, end: float, confirm: Callable[[int], bool]) -> list[float]:
    """The waits between the core's bootstraps from ``start`` to ``end``, each
    confirmed from ``up`` at once if ``confirm(its index)``."""
    times: list[float] = []
    now = start
    while now <= end:
        if bootstraps(core.handle_timer(now)):
            if confirm(len(times)):
                core.handle_frame(up, confirmed(core._last_bootstrap_sequence, core.key), now + 0.05)
            times.append(now)
        now += 0.25
    return [b - a for a, b in pairwise(times)]


def test_an_origin_whose_path_holds_waits_ever_longer_up_to_the_quiet_interval() -> None:
    core, up = child()
    settled = T0 + 10  # past the settling window of a new parent
    core._settling_until = settled
    found = waits(core, up, settled, settled + 160, lambda _: True)
    assert found[:5] == pytest.approx([10.0, 20.0, 30.0, 30.0, 30.0], abs=0.6)
    assert QUIET_BOOTSTRAP_INTERVAL_S == 30.0


def test_an_unconfirmed_bootstrap_puts_the_origin_back_on_the_reference_schedule() -> None:
    core, up = child()
    settled = T0 + 10
    core._settling_until = settled
    # The fourth goes unconfirmed (it crossed a reference node, say).
    found = waits(core, up, settled, settled + 120, lambda n: n != 3)
    assert found[:6] == pytest.approx([10.0, 20.0, 30.0, 5.0, 10.0, 20.0], abs=0.6)


def test_the_origin_takes_only_a_confirmation_of_its_last_bootstrap_from_where_it_went() -> None:
    core, up = child()
    other, _ = core.add_peer(IDS[6].public_key, 3, T0 + 1, extensions=QUIET)
    core._bootstrap_now(T0 + 2)
    sequence = core._last_bootstrap_sequence
    core.take_outputs()
    core.handle_frame(up, confirmed(sequence - 1, core.key), T0 + 2)
    core.handle_frame(other, confirmed(sequence, core.key), T0 + 2)
    assert core.drops["path confirmation: not our last bootstrap"] == 2
    assert core._confirmed_sequence == -1
    core.handle_frame(up, confirmed(sequence, core.key), T0 + 2)
    assert core._confirmed_sequence == sequence


def test_an_origin_that_bootstraps_another_way_after_a_confirmed_path_sends_the_old_one_word() -> None:
    core, up = child()
    core._bootstrap_now(T0 + 2)
    old = core._last_bootstrap_sequence
    core.handle_frame(up, confirmed(old, core.key), T0 + 2)
    other, _ = core.add_peer(IDS[6].public_key, 3, T0 + 3, extensions=QUIET)
    core.take_outputs()
    core._last_bootstrap_port = other  # as if the previous one had gone there
    core._confirmed_sequence = old
    core._bootstrap_now(T0 + 4)
    out = core.take_outputs()
    assert core._last_bootstrap_port == up
    assert moves(out) == [(other, PathMoved(core.key, old))]


def test_a_new_peering_puts_the_origin_back_on_the_reference_schedule() -> None:
    core, up = child()
    confirmed_bootstrap(core, up, T0 + 2)
    assert core._bootstrap_interval(T0 + 20) == 2 * BOOTSTRAP_INTERVAL_S
    core.add_peer(IDS[6].public_key, 3, T0 + 3, extensions=QUIET)
    assert core._bootstrap_interval(T0 + 20) == BOOTSTRAP_INTERVAL_S


# ---------------------------------------------------------------- in a mesh


def quiet_mesh(seed: int, extended: set[str] | None = None, bits: int = QUIET) -> Mesh:
    topology = grid(4, 3)
    mesh = Mesh(seed)
    for name in topology.nodes:
        if extended is None or name in extended:
            mesh.node_configs[name] = CoreConfig(extensions=bits)
        mesh.add_node(name)
    for a, b in topology.edges:
        mesh.link(a, b)
    return mesh


def bootstraps_sent(mesh: Mesh) -> int:
    return sum(node.core.stats["bootstraps sent"] for node in mesh.nodes.values())


def test_at_rest_a_quiet_mesh_sends_a_fraction_of_the_bootstraps_and_still_delivers_to_every_key() -> None:
    quiet, plain = quiet_mesh(7), quiet_mesh(7, bits=Extension.PATH_REPAIR)
    for mesh in (quiet, plain):
        mesh.run_for(40)
    before = (bootstraps_sent(quiet), bootstraps_sent(plain))
    for mesh in (quiet, plain):
        mesh.run_for(120)
    sent_quiet, sent_plain = bootstraps_sent(quiet) - before[0], bootstraps_sent(plain) - before[1]
    # Eleven bootstrapping nodes: 264 in two minutes on the reference's schedule.
    assert sent_plain >= 250
    assert sent_quiet <= sent_plain / 4, (sent_quiet, sent_plain)
    # Every origin's last path is confirmed, and its entries live long.
    for name, node in quiet.nodes.items():
        core = node.core
        if core.parent is None:
            continue
        assert core._confirmed_sequence == core._last_bootstrap_sequence, name
        for hop in bootstrap_path(quiet, name)[1:]:
            assert quiet.nodes[hop].core.routes[core.key].lifetime == QUIET_ENTRY_EXPIRY_S
    # Frames routed by key alone reach every node from every node.
    keys = {name: node.core.key for name, node in quiet.nodes.items()}
    for source in quiet.nodes:
        for name, key in keys.items():
            if name != source:
                quiet.send(source, key, b"by key")
    quiet.run_for(1)
    assert all(len(node.delivered) == len(quiet.nodes) - 1 for node in quiet.nodes.values())


def test_a_path_through_a_node_without_quiet_paths_is_never_confirmed() -> None:
    topology_nodes = sorted(grid(4, 3).nodes)
    plain = set(topology_nodes[::3])
    mesh = quiet_mesh(11, extended=set(topology_nodes) - plain)
    seen: list[tuple[str, str]] = []
    mesh.frame_observer = lambda a, b, data: (
        seen.append((a, b))
        if is_extension_frame(data) and isinstance(decode_extension(data), PathConfirmed)
        else None
    )
    mesh.run_for(60)
    assert seen, "no confirmation was sent: the test shows nothing"
    assert all(a not in plain and b not in plain for a, b in seen)
    crossing = 0
    for name in set(topology_nodes) - plain:
        core = mesh.nodes[name].core
        hops = bootstrap_path(mesh, name)
        if core.parent is None or not plain & set(hops):
            continue
        crossing += 1
        assert core._confirmed_sequence != core._last_bootstrap_sequence, name
        assert core._bootstrap_interval(mesh.now + 60) == BOOTSTRAP_INTERVAL_S
    assert crossing, "no path crossed a plain node: the test shows nothing"
    # An entry lives long only on a path its origin knows confirmed: elsewhere
    # a confirmation that stopped short was undone beyond where it stopped.
    origins = {node.core.key: node.core for node in mesh.nodes.values()}
    long_lived = [
        (name, entry)
        for name, node in mesh.nodes.items()
        for entry in node.core.routes.ordered
        if entry.lifetime == QUIET_ENTRY_EXPIRY_S
    ]
    assert long_lived, "no path was confirmed: the test shows nothing"
    for name, entry in long_lived:
        assert origins[entry.key]._confirmed_sequence == entry.sequence, name
