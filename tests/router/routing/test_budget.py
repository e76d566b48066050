"""The per-peer budget of signature checks, alone and in the core."""

from __future__ import annotations

from router.routing.budget import TokenBucket
from router.routing.constants import (
    MAX_ANNOUNCEMENT_BYTES,
    MAX_ANNOUNCEMENT_HOPS,
    MIN_ANNOUNCEMENT_HOP_BYTES,
)
from router.routing.core import CoreConfig, RouterCore
from router.routing.outputs import ClosePeer
from router.wire import (
    BootstrapFrame,
    Identity,
    RootAnnouncement,
    TreeAnnouncementFrame,
    Watermark,
    decode_frame,
    encode_frame,
    sign_bootstrap,
)
from tests.router.routing.routing_helpers import LOW, MID, T0


def test_a_budget_refills_at_its_rate_up_to_its_burst() -> None:
    budget = TokenBucket(rate=10.0, burst=3.0, now=0.0)
    assert [budget.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert budget.take(0.1) and not budget.take(0.1)  # one token back in 0.1 s
    assert [budget.take(100.0) for _ in range(4)] == [True, True, True, False]  # never past the burst
    assert budget.take(99.0) is False  # time going backwards gives nothing back


def test_bootstraps_past_the_budget_are_dropped_unverified_and_the_peer_kept() -> None:
    core = RouterCore(MID, T0, CoreConfig(signature_checks_per_s=5.0, signature_checks_burst=10.0))
    port, _ = core.add_peer(LOW.public_key, 3, T0)

    def bootstrap(sequence: int) -> bytes:
        body = sign_bootstrap(LOW, sequence, *core.root())
        return encode_frame(BootstrapFrame(LOW.public_key, Watermark(LOW.public_key, 0), body.encode()))

    outputs = [core.handle_frame(port, bootstrap(100 + n), T0) for n in range(25)]
    assert not any(isinstance(o, ClosePeer) for out in outputs for o in out)
    assert core.drops["over budget: bootstrap"] == 15
    assert core.routes[LOW.public_key].sequence == 109  # the tenth, the last within the burst
    # A second later five more checks are affordable.
    for n in range(6):
        core.handle_frame(port, bootstrap(200 + n), T0 + 1.0)
    assert core.drops["over budget: bootstrap"] == 16
    assert core.routes[LOW.public_key].sequence == 204


def test_an_announcement_is_charged_a_check_for_each_hop_not_verified_before() -> None:
    """A deep announcement of fresh hops costs as many checks as it has new hops,
    so the budget holds however deep a peer makes its announcements."""
    core = RouterCore(MID, T0, CoreConfig(signature_checks_per_s=1.0, signature_checks_burst=10.0))
    port, _ = core.add_peer(LOW.public_key, 3, T0)

    def deep(hops: int, sequence: int) -> bytes:
        root = Identity.generate()
        ann = RootAnnouncement.create(root.public_key, sequence).with_hop(root, 1)
        for _ in range(hops - 2):
            ann = ann.with_hop(Identity.generate(), 1)
        return encode_frame(TreeAnnouncementFrame(ann.with_hop(LOW, 1).raw))

    core.handle_frame(port, deep(12, 1), T0)  # twelve checks: more than the burst
    assert core.drops["over budget: announcement"] == 1
    assert port not in core.announcements
    core.handle_frame(port, deep(6, 2), T0)  # six: within it
    assert core.drops["over budget: announcement"] == 1
    assert port in core.announcements
    core.handle_frame(port, deep(6, 3), T0)  # six more: four are left
    assert core.drops["over budget: announcement"] == 2
    # With the budget spent, an announcement is dropped before it is even parsed.
    core.handle_frame(port, deep(4, 4), T0)  # four: the last of it
    garbage = encode_frame(TreeAnnouncementFrame(b"not an announcement"))
    assert not any(isinstance(o, ClosePeer) for o in core.handle_frame(port, garbage, T0))
    assert core.drops["over budget: announcement"] == 3
    # Once the budget is back, the same bytes close the peer.
    assert any(isinstance(o, ClosePeer) for o in core.handle_frame(port, garbage, T0 + 5.0))


def test_an_announcement_is_parsed_only_if_the_budget_could_pay_for_every_hop_it_may_hold() -> None:
    """A flood of deep announcements that finds the budget short costs a length
    check each, not a parse: bytes for more hops than the budget holds are
    dropped before anything else is looked at, even if they are garbage."""
    core = RouterCore(MID, T0, CoreConfig(signature_checks_per_s=1.0, signature_checks_burst=10.0))
    port, _ = core.add_peer(LOW.public_key, 3, T0)
    room_for_eleven = encode_frame(TreeAnnouncementFrame(b"\x00" * (33 + 11 * MIN_ANNOUNCEMENT_HOP_BYTES)))
    outputs = core.handle_frame(port, room_for_eleven, T0)
    assert not any(isinstance(o, ClosePeer) for o in outputs)
    assert core.drops["over budget: announcement"] == 1
    # The same garbage with room for ten is parsed (the budget holds ten), and closes the peer.
    room_for_ten = encode_frame(TreeAnnouncementFrame(b"\x00" * (33 + 10 * MIN_ANNOUNCEMENT_HOP_BYTES)))
    assert any(isinstance(o, ClosePeer) for o in core.handle_frame(port, room_for_ten, T0))
    assert core.drops["over budget: announcement"] == 1


def deep_announcement(hops: int, sender: Identity, sequence: int = 1, port: int = 1) -> bytes:
    """An announcement of ``hops`` validly signed hops from a fresh root, the last by ``sender``."""
    root = Identity.generate()
    ann = RootAnnouncement.create(root.public_key, sequence).with_hop(root, port)
    for _ in range(hops - 2):
        ann = ann.with_hop(Identity.generate(), port)
    return encode_frame(TreeAnnouncementFrame(ann.with_hop(sender, port).raw))


def test_announcements_deeper_than_the_limit_are_dropped_unverified() -> None:
    core = RouterCore(MID, T0, CoreConfig())
    port, _ = core.add_peer(LOW.public_key, 3, T0)
    reason = f"announcement deeper than {MAX_ANNOUNCEMENT_HOPS} hops"
    # One hop over, with ports large enough that the size alone does not tell: parsed, then dropped.
    outputs = core.handle_frame(port, deep_announcement(MAX_ANNOUNCEMENT_HOPS + 1, LOW, port=1 << 40), T0)
    assert core.drops[reason] == 1 and port not in core.announcements
    assert not any(isinstance(o, ClosePeer) for o in outputs)  # dropped, the peer kept
    # Far over: dropped by its size, before it is parsed (these bytes are not even an announcement).
    huge = encode_frame(TreeAnnouncementFrame(b"\x00" * (MAX_ANNOUNCEMENT_BYTES + 1)))
    assert not any(isinstance(o, ClosePeer) for o in core.handle_frame(port, huge, T0))
    assert core.drops[reason] == 2
    # At the limit: taken (and charged its checks).
    core.handle_frame(port, deep_announcement(MAX_ANNOUNCEMENT_HOPS, LOW, port=1 << 40), T0)
    assert port in core.announcements and core.drops[reason] == 2


def test_the_largest_announcement_within_the_limit_fits_the_byte_bound() -> None:
    frame = decode_frame(
        deep_announcement(MAX_ANNOUNCEMENT_HOPS, LOW, sequence=(1 << 64) - 1, port=(1 << 64) - 1)
    )
    assert isinstance(frame, TreeAnnouncementFrame)
    assert len(frame.payload) <= MAX_ANNOUNCEMENT_BYTES
