"""The routing core on its own: what it sends, and how it treats forged or malformed input."""

from __future__ import annotations

from itertools import pairwise

import pytest

from router.routing.constants import (
    ENTRY_BOARDING_MARGIN_S,
    ENTRY_EXPIRY_S,
    SETTLE_BOOTSTRAP_INTERVAL_S,
    SETTLE_WINDOW_S,
)
from router.routing.core import CoreConfig, RouterCore
from router.routing.outputs import (
    CloseCause,
    ClosePeer,
    Deliver,
    Output,
    ParentChanged,
    RootChanged,
    SendFrame,
)
from router.routing.snek import SnakeEntry
from router.routing.tree import LOCAL_PORT
from router.sim.mesh import Mesh
from router.wire import (
    BootstrapFrame,
    FrameType,
    Identity,
    Keepalive,
    PublicKey,
    RootAnnouncement,
    TrafficFrame,
    TreeAnnouncementFrame,
    WakeupBroadcastFrame,
    Watermark,
    decode_announcement,
    decode_frame,
    encode_frame,
    sign_bootstrap,
    sign_wakeup,
)
from tests.router.routing.routing_helpers import HIGH, LOW, MID, T0, ordered_identities


def announcement_frame(ann: RootAnnouncement) -> bytes:
    return encode_frame(TreeAnnouncementFrame(ann.raw))


def rooted_at(peer: Identity, sequence: int = 1, port: int = 1) -> RootAnnouncement:
    """``peer``'s own root announcement, as it would send it to us on its ``port``."""
    return RootAnnouncement.create(peer.public_key, sequence).with_hop(peer, port)


def closes(outputs: list[Output]) -> list[ClosePeer]:
    return [o for o in outputs if isinstance(o, ClosePeer)]


@pytest.fixture
def core() -> RouterCore:
    return RouterCore(MID, T0)


def test_new_peer_gets_our_signed_announcement(core: RouterCore) -> None:
    port, out = core.add_peer(HIGH.public_key, 3, T0)
    sends = [o for o in out if isinstance(o, SendFrame)]
    assert len(sends) == 1 and sends[0].port == port and not sends[0].traffic
    frame = decode_frame(sends[0].data)
    assert isinstance(frame, TreeAnnouncementFrame)
    ann = decode_announcement(frame.payload)  # verifies
    assert ann.root_key == MID.public_key
    assert [(h.port, h.signer) for h in ann.hops] == [(port, MID.public_key)]


def test_stronger_root_becomes_parent(core: RouterCore) -> None:
    port, _ = core.add_peer(HIGH.public_key, 3, T0)
    out = core.handle_frame(port, announcement_frame(rooted_at(HIGH, port=5)), T0 + 0.1)
    assert ParentChanged(port) in out
    assert RootChanged(HIGH.public_key, 1, (5,)) in out
    assert core.coordinates() == (5,)
    # the weaker peer is told about the stronger root
    low_port, _ = core.add_peer(LOW.public_key, 3, T0)
    out = core.handle_frame(low_port, announcement_frame(rooted_at(LOW)), T0 + 0.2)
    assert core.root() == (HIGH.public_key, 1)
    assert not closes(out)


def _announcements_sent(out: list[Output], port: int) -> list[RootAnnouncement]:
    frames = [decode_frame(o.data) for o in out if isinstance(o, SendFrame) and o.port == port]
    return [decode_announcement(f.payload) for f in frames if isinstance(f, TreeAnnouncementFrame)]


def test_a_weaker_peer_is_told_the_stronger_root_once_per_announcement(core: RouterCore) -> None:
    """When a peer's weaker announcement crosses ours on the link, ours is already
    on its way: a second copy would only look like bad news from a parent."""
    port, _ = core.add_peer(HIGH.public_key, 3, T0)
    core.handle_frame(port, announcement_frame(rooted_at(HIGH, port=5)), T0 + 0.1)
    low_port, out = core.add_peer(LOW.public_key, 3, T0 + 0.2)
    (told,) = _announcements_sent(out, low_port)
    assert told.root_key == HIGH.public_key
    # LOW's first announcement: never answered (it has ours already).
    assert not _announcements_sent(
        core.handle_frame(low_port, announcement_frame(rooted_at(LOW)), T0 + 0.3), low_port
    )
    # A later weaker one, sent before ours arrived: ours is in flight, no second copy.
    out = core.handle_frame(low_port, announcement_frame(rooted_at(LOW, sequence=2)), T0 + 0.4)
    assert not _announcements_sent(out, low_port)
    # Once our root announcement has changed since we last told LOW, LOW is told the new one.
    core.handle_frame(port, announcement_frame(rooted_at(HIGH, sequence=2, port=5)), T0 + 0.5)
    core._announced.pop(low_port)  # as if the update to LOW had not been sent
    out = core.handle_frame(low_port, announcement_frame(rooted_at(LOW, sequence=3)), T0 + 0.6)
    (again,) = _announcements_sent(out, low_port)
    assert (again.root_key, again.root_sequence) == (HIGH.public_key, 2)


def forged_announcements() -> dict[str, bytes]:
    good = rooted_at(HIGH)
    bad_signature = bytearray(good.raw)
    bad_signature[-1] ^= 1
    twice = RootAnnouncement.create(HIGH.public_key, 1).with_hop(HIGH, 1).with_hop(LOW, 2).with_hop(HIGH, 3)
    wrong_sender = RootAnnouncement.create(LOW.public_key, 1).with_hop(LOW, 1)
    return {
        "announcement signature": bytes(bad_signature),
        "routing loop": twice.raw,
        "last signer is not the peer": wrong_sender.raw,
        "no hops": RootAnnouncement.create(HIGH.public_key, 1).raw,
        "truncated": good.raw[:-10],
    }


@pytest.mark.parametrize(("reason", "payload"), forged_announcements().items())
def test_forged_announcements_close_the_peering(core: RouterCore, reason: str, payload: bytes) -> None:
    port, _ = core.add_peer(HIGH.public_key, 3, T0)
    out = core.handle_frame(port, encode_frame(TreeAnnouncementFrame(payload)), T0)
    (closed,) = closes(out)
    assert closed.port == port
    assert reason.split(maxsplit=1)[0] in closed.reason or reason == "truncated"
    bad_signature = reason == "announcement signature"
    assert (closed.cause is CloseCause.BAD_SIGNATURE) == bad_signature, closed
    assert sum(v for k, v in core.drops.items() if k.startswith("closed")) == 1
    assert core.handle_frame(port, encode_frame(Keepalive()), T0) == []
    assert core.drops["unknown port"] == 1
    assert core.root() == (MID.public_key, core.sequence)


def test_sequence_going_backwards_closes(core: RouterCore) -> None:
    port, _ = core.add_peer(HIGH.public_key, 3, T0)
    core.handle_frame(port, announcement_frame(rooted_at(HIGH, sequence=5)), T0)
    (closed,) = closes(core.handle_frame(port, announcement_frame(rooted_at(HIGH, sequence=4)), T0 + 1))
    assert "backwards" in closed.reason


@pytest.mark.parametrize("cut", [1, 5, 9, 10, 11, 40, 150])
def test_truncated_frames_close(core: RouterCore, cut: int) -> None:
    port, _ = core.add_peer(HIGH.public_key, 3, T0)
    data = announcement_frame(rooted_at(HIGH))
    assert closes(core.handle_frame(port, data[:-cut], T0))


def test_garbage_traffic_closes(core: RouterCore) -> None:
    port, _ = core.add_peer(HIGH.public_key, 3, T0)
    assert closes(core.handle_frame(port, b"pine\x00\x03\x00\x00\x00\x0c\x00\x00", T0))


def test_bootstrap_for_another_root_is_dropped_and_counted(core: RouterCore) -> None:
    port, _ = core.add_peer(LOW.public_key, 3, T0)
    body = sign_bootstrap(LOW, 42, HIGH.public_key, 9)  # we are our own root, not HIGH
    frame = BootstrapFrame(LOW.public_key, Watermark(LOW.public_key, 0), body.encode())
    out = core.handle_frame(port, encode_frame(frame), T0)
    assert not closes(out)
    assert core.drops["bootstrap for another root"] == 1
    assert LOW.public_key not in core.routes


def bootstrap_frame(origin: Identity, body: bytes) -> bytes:
    return encode_frame(BootstrapFrame(origin.public_key, Watermark(origin.public_key, 0), body))


def test_bootstrap_with_a_bad_signature_closes_the_peer(core: RouterCore) -> None:
    port, _ = core.add_peer(LOW.public_key, 3, T0)
    forged = sign_bootstrap(HIGH, 42, *core.root())  # signed by someone else
    (closed,) = closes(core.handle_frame(port, bootstrap_frame(LOW, forged.encode()), T0))
    assert closed.cause is CloseCause.BAD_SIGNATURE and "signature" in closed.reason
    assert core.drops["closed: bad signature"] == 1
    assert LOW.public_key not in core.routes


def test_bootstrap_cheap_checks_come_before_the_signature(core: RouterCore) -> None:
    port, _ = core.add_peer(LOW.public_key, 3, T0)
    # Forged, but for another root: dropped by the root check, never verified.
    other_root = sign_bootstrap(HIGH, 42, HIGH.public_key, 9)
    assert not closes(core.handle_frame(port, bootstrap_frame(LOW, other_root.encode()), T0))
    assert core.drops["bootstrap for another root"] == 1
    # A genuine one installs a route and makes LOW our descending neighbour.
    good = sign_bootstrap(LOW, 43, *core.root())
    core.handle_frame(port, bootstrap_frame(LOW, good.encode()), T0)
    assert core.routes[LOW.public_key].source == port
    assert core.descending is not None and core.descending.key == LOW.public_key
    # A replay of the same sequence is refused, and so is a forged older one,
    # both before any signature check.
    core.handle_frame(port, bootstrap_frame(LOW, good.encode()), T0)
    forged_old = sign_bootstrap(HIGH, 40, *core.root())
    assert not closes(core.handle_frame(port, bootstrap_frame(LOW, forged_old.encode()), T0))
    assert core.drops["bootstrap replayed"] == 2
    # Malformed bodies are dropped as before.
    assert not closes(core.handle_frame(port, bootstrap_frame(LOW, b"\x01\x02"), T0))
    assert core.drops["bootstrap invalid"] == 1
    assert "closed: bad signature" not in core.drops


def test_wakeup_with_a_bad_signature_closes(core: RouterCore) -> None:
    port, _ = core.add_peer(LOW.public_key, 3, T0)
    body = sign_wakeup(HIGH, 1, *core.root())
    frame = WakeupBroadcastFrame(LOW.public_key, body.encode(), hop_limit=5)
    (closed,) = closes(core.handle_frame(port, encode_frame(frame), T0))
    assert closed.cause is CloseCause.BAD_SIGNATURE


def test_keepalives_and_dead_peers(core: RouterCore) -> None:
    port, _ = core.add_peer(LOW.public_key, 3, T0)
    keepalive = encode_frame(Keepalive())
    now = T0
    sent_keepalives = 0
    while now < T0 + 4.9:
        now = core.next_deadline()
        for out in core.handle_timer(now):
            if isinstance(out, SendFrame) and out.data == keepalive:
                sent_keepalives += 1
                assert now - T0 >= 3.0
        core.handle_frame(port, keepalive, now)  # the peer keeps talking
    assert sent_keepalives >= 1
    assert port in core.peers
    silent_since = now
    closed: list[ClosePeer] = []
    while not closed:
        now = core.next_deadline()
        closed = closes(core.handle_timer(now))
    assert 5.0 <= now - silent_since <= 5.0 + 0.5 + 1e-9
    assert port not in core.peers


def test_closest_node_receives_frames_for_absent_keys() -> None:
    mesh = Mesh(seed=5)
    for name in ("a", "b", "c"):
        mesh.add_node(name)
    mesh.link("a", "b")
    mesh.link("b", "c")
    mesh.run_for(30)
    # A key just below the middle node's: the middle node is the closest one above it.
    ordered = sorted(mesh.nodes, key=lambda n: mesh.nodes[n].core.key)
    closest = ordered[1]
    absent = PublicKey((int.from_bytes(mesh.nodes[closest].core.key, "big") - 1).to_bytes(32, "big"))
    sender = ordered[2]
    mesh.send(sender, absent, b"anyone there?")
    mesh.run_for(1)
    got = [
        (name, d)
        for name, node in mesh.nodes.items()
        for d in node.delivered
        if d.payload == b"anyone there?"
    ]
    assert len(got) == 1
    name, deliver = got[0]
    assert name == closest
    assert isinstance(deliver, Deliver) and deliver.destination_key == absent
    assert deliver.source_key == mesh.nodes[sender].core.key


def test_decision_cache_is_used_and_voided_by_state_changes() -> None:
    mesh = Mesh(seed=6)
    for name in ("a", "b", "c"):
        mesh.add_node(name)
    mesh.link("a", "b")
    mesh.link("b", "c")
    mesh.run_for(30)
    b = mesh.nodes["b"].core
    target = mesh.nodes["c"].core.key
    for _ in range(5):
        mesh.send("a", target, b"x")
    mesh.run_for(0.5)
    assert b.traffic.hits >= 4 and b.traffic.misses >= 1
    misses = b.traffic.misses
    mesh.add_node("d")
    mesh.link("b", "d")  # a new peer changes routing state
    mesh.send("a", target, b"x")
    mesh.run_for(0.5)
    assert b.traffic.misses > misses
    assert LOCAL_PORT == 0


def test_cached_decisions_end_when_their_route_entry_stops_taking_frames() -> None:
    """A frame that boards a route entry is decided afresh once the entry is in its
    last moments; one already riding the entry keeps it until the entry expires."""
    ids = ordered_identities()
    low, via, other = ids[1], ids[6], ids[5]
    core = RouterCore(MID, T0, CoreConfig(verify_signatures=False))
    entry_port, _ = core.add_peer(via.public_key, 3, T0)
    in_port, _ = core.add_peer(other.public_key, 3, T0)
    core.routes[low.public_key] = SnakeEntry(low.public_key, entry_port, None, 77, T0, core.root())
    boarding_until = T0 + ENTRY_EXPIRY_S - ENTRY_BOARDING_MARGIN_S

    def sent_on(out: list[Output]) -> list[int]:
        return [o.port for o in out if isinstance(o, SendFrame) and o.data[5] == FrameType.TRAFFIC]

    def riding(now: float) -> list[Output]:
        frame = TrafficFrame((), (), low.public_key, other.public_key, b"r", Watermark(low.public_key, 77))
        return core.handle_frame(in_port, encode_frame(frame), now)

    assert sent_on(core.send_traffic(low.public_key, b"a", T0)) == [entry_port]
    assert sent_on(riding(T0)) == [entry_port]
    # Both decisions are cached; past the boarding deadline only the rider keeps its way.
    late = boarding_until + 0.1
    out = core.send_traffic(low.public_key, b"b", late)
    assert sent_on(out) == [] and [d.payload for d in out if isinstance(d, Deliver)] == [b"b"]
    assert sent_on(riding(late)) == [entry_port]
    # Once the entry has expired, nobody is sent its way.
    assert sent_on(riding(T0 + ENTRY_EXPIRY_S)) == []


def test_oversized_announcement_closes_without_breaking_the_core() -> None:
    core = RouterCore(MID, T0, CoreConfig(verify_signatures=False))
    port, _ = core.add_peer(HIGH.public_key, 3, T0)
    ann = RootAnnouncement.create(HIGH.public_key, 1)
    # Signers must not repeat: add unsigned hops by fresh keys until the
    # announcement is too long for us to extend, then HIGH's hop last.
    n = 100
    while len(ann.raw) < 0xFFFF - 12 - 200:
        ann = ann.with_hop(Identity.from_seed(n.to_bytes(32, "big")), 1, sign=False)
        n += 1
    ann = ann.with_hop(HIGH, 1, sign=False)
    out = core.handle_frame(port, announcement_frame(ann), T0)
    assert closes(out) and core.drops["closed: malformed frame"] == 1
    # the core still works
    _, out = core.add_peer(LOW.public_key, 3, T0)
    assert any(isinstance(o, SendFrame) for o in out)
    core.handle_timer(core.next_deadline())


def test_unknown_frame_types_and_versions_are_dropped_not_fatal(core: RouterCore) -> None:
    port, _ = core.add_peer(HIGH.public_key, 3, T0)
    for header in (b"pine\x00\x09\x00\x00\x00\x0a", b"pine\x01\x01\x00\x00\x00\x0a"):
        assert not closes(core.handle_frame(port, header, T0))
    assert core.drops["unknown frame version or type"] == 2
    assert port in core.peers


def test_relayed_garbage_is_dropped_not_fatal() -> None:
    """Malformed coordinates or broadcast bodies from afar do not close the relaying peer."""
    core = RouterCore(MID, T0)
    port, _ = core.add_peer(HIGH.public_key, 3, T0)
    # destination is us, source coordinates end inside a varu64
    bad = bytearray(
        encode_frame(
            TrafficFrame((), (1,), MID.public_key, LOW.public_key, b"x", Watermark(LOW.public_key, 0))
        )
    )
    bad[16] = 0x81  # the source port (after header, lengths) becomes a dangling continuation
    assert not closes(core.handle_frame(port, bytes(bad), T0))
    assert core.drops["traffic malformed"] == 1
    body = sign_wakeup(LOW, 1, *core.root()).encode() + b"junk"
    assert not closes(
        core.handle_frame(port, encode_frame(WakeupBroadcastFrame(LOW.public_key, body, hop_limit=5)), T0)
    )
    assert core.drops["broadcast malformed"] == 1
    assert port in core.peers


def test_bytearray_input(core: RouterCore) -> None:
    port, _ = core.add_peer(HIGH.public_key, 3, T0)
    out = core.handle_frame(port, bytearray(announcement_frame(rooted_at(HIGH))), T0)
    assert ParentChanged(port) in out


def _bootstrap_times(core: RouterCore, port: int, start: float, until: float) -> list[float]:
    """Drive ``core``'s timers from ``start`` to ``until``, keeping its peer alive;
    when it sent bootstraps (relative to ``start``)."""
    times: list[float] = []
    now = start
    while now < until:
        now = min(core.next_deadline(), until)
        core.handle_frame(port, encode_frame(Keepalive()), now)
        for out in core.handle_timer(now):
            if isinstance(out, SendFrame) and isinstance(decode_frame(out.data), BootstrapFrame):
                times.append(round(now - start, 3))
    return times


def _child_of_high(config: CoreConfig) -> tuple[RouterCore, int]:
    core = RouterCore(MID, T0, config)
    port, _ = core.add_peer(HIGH.public_key, 3, T0)
    core.handle_frame(port, announcement_frame(rooted_at(HIGH, port=5)), T0)
    assert core.parent == port
    return core, port


def test_bootstraps_come_every_half_second_while_settling_then_every_five() -> None:
    core, port = _child_of_high(CoreConfig())
    times = _bootstrap_times(core, port, T0, T0 + 30)
    settling = [t for t in times if t < SETTLE_WINDOW_S]
    assert len(settling) >= SETTLE_WINDOW_S / SETTLE_BOOTSTRAP_INTERVAL_S - 1
    assert all(abs(b - a - SETTLE_BOOTSTRAP_INTERVAL_S) <= 0.05 for a, b in pairwise(settling))
    after = [t for t in times if t >= SETTLE_WINDOW_S]
    assert after and all(4.9 <= b - a <= 5.1 for a, b in pairwise(after))
    # A new parent (the old one gone, a new one found) starts another settling period.
    low_port, _ = core.add_peer(LOW.public_key, 3, T0 + 30)
    core.handle_frame(low_port, announcement_frame(rooted_at(HIGH, port=6).with_hop(LOW, 2)), T0 + 30)
    core.remove_peer(port, T0 + 30)
    assert core.parent == low_port
    again = _bootstrap_times(core, low_port, T0 + 30, T0 + 36)
    assert len(again) >= 10


def test_without_settling_bootstraps_follow_the_reference_every_five_seconds() -> None:
    core, port = _child_of_high(CoreConfig(settle_window_s=0.0))
    times = _bootstrap_times(core, port, T0, T0 + 30)
    assert len(times) >= 5 and all(4.9 <= b - a <= 5.1 for a, b in pairwise(times))


def test_the_traffic_fast_path_forwards_as_handle_frame_does() -> None:
    """``forward_traffic`` returns the (port, frame) that ``handle_frame`` would
    have output as a SendFrame, and leaves no output behind for it."""
    ids = ordered_identities()
    low, via, other = ids[1], ids[6], ids[5]
    core = RouterCore(MID, T0, CoreConfig(verify_signatures=False))
    entry_port, _ = core.add_peer(via.public_key, 3, T0)
    in_port, _ = core.add_peer(other.public_key, 3, T0)
    core.routes[low.public_key] = SnakeEntry(low.public_key, entry_port, None, 77, T0, core.root())
    core.take_outputs()
    frame = encode_frame(
        TrafficFrame((), (), low.public_key, other.public_key, b"r", Watermark(low.public_key, 77))
    )
    slow = [(o.port, o.data) for o in core.handle_frame(in_port, frame, T0) if isinstance(o, SendFrame)]
    forwarded = core.traffic.forwarded
    assert core.forward_traffic(in_port, frame, T0 + 0.1) == slow[0]
    assert slow[0][0] == entry_port
    assert core._last_sent[entry_port] == T0 + 0.1  # what keepalives are timed from
    assert not core.has_outputs
    assert core.traffic.forwarded == forwarded + 1


def test_the_traffic_fast_path_leaves_deliveries_and_closes_as_outputs(core: RouterCore) -> None:
    port, _ = core.add_peer(HIGH.public_key, 3, T0)
    core.take_outputs()
    to_us = encode_frame(TrafficFrame((), (), MID.public_key, HIGH.public_key, b"for you"))
    assert core.forward_traffic(port, to_us, T0) is None
    assert core.has_outputs
    delivered = [o for o in core.take_outputs() if isinstance(o, Deliver)]
    assert [d.payload for d in delivered] == [b"for you"]
    assert not core.has_outputs
    assert core.forward_traffic(port, b"pine\x00\x03\x00\x00\x00\x0c\x00\x00", T0) is None
    assert closes(core.take_outputs())
    drops = core.drops["unknown port"]
    assert core.forward_traffic(99, to_us, T0) is None
    assert core.drops["unknown port"] == drops + 1


def test_a_root_nobody_announces_any_more_leaves_the_verified_cache() -> None:
    ids = ordered_identities()
    weaker, stronger = ids[5], ids[7]
    core = RouterCore(MID, T0)
    port, _ = core.add_peer(weaker.public_key, 3, T0)
    core.handle_frame(port, announcement_frame(rooted_at(weaker, port=5)), T0)
    assert core.root() == (weaker.public_key, 1) and len(core._verified) == 1
    # The peer finds a stronger root: it announces that one, and nobody the weaker.
    through = rooted_at(stronger, port=2).with_hop(weaker, 5)
    core.handle_frame(port, announcement_frame(through), T0 + 1)
    assert core.root() == (stronger.public_key, 1)
    assert len(core._verified) == 2  # the stronger root's two prefixes only
    assert core.stats["verified prefixes of unused roots forgotten"] == 1
