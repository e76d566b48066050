"""Whatever a peer sends, ``handle_frame`` returns outputs and never raises, and the
core's invariants hold after every step."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from router.routing.core import RouterCore
from router.routing.outputs import ClosePeer
from router.routing.tree import LOCAL_PORT
from router.wire import (
    BootstrapFrame,
    RootAnnouncement,
    TrafficFrame,
    TreeAnnouncementFrame,
    WakeupBroadcastFrame,
    Watermark,
    encode_frame,
    sign_bootstrap,
    sign_wakeup,
)
from tests.router.wire.keys import K1, K2, K3

T0 = 50.0
ROOT = RootAnnouncement.create(K3.public_key, 1).with_hop(K3, 1)
SEEDS = [
    encode_frame(TreeAnnouncementFrame(ROOT.raw)),
    encode_frame(TreeAnnouncementFrame(ROOT.with_hop(K2, 4).raw)),
    encode_frame(
        BootstrapFrame(
            K2.public_key, Watermark(K2.public_key, 0), sign_bootstrap(K2, 9, K3.public_key, 1).encode()
        )
    ),
    encode_frame(TrafficFrame((), (1,), K1.public_key, K2.public_key, b"hi", Watermark(K2.public_key, 3))),
    encode_frame(TrafficFrame((1, 2), (1,), K2.public_key, K1.public_key, b"hi")),
    encode_frame(
        WakeupBroadcastFrame(K2.public_key, sign_wakeup(K2, 3, K3.public_key, 1).encode(), hop_limit=5)
    ),
]


def check_invariants(core: RouterCore, now: float | None = None) -> None:
    """What must hold of a core between calls, whatever it was sent; after its
    timers ran at ``now``, nothing may be due then any more."""
    ports = set(core.peers)
    assert set(core.peer_keys) == ports == set(core.link_types), "the peer tables disagree"
    assert set(core.announcements) <= ports, "an announcement from a port with no peer"
    assert core.parent is None or core.parent in core.announcements, "a parent with no announcement"
    assert all({e.source, e.destination} - {None, LOCAL_PORT} <= ports for e in core.routes.values()), (
        "a route entry through a port with no peer"
    )
    if now is not None:
        assert core.next_deadline() > now, "a timer due now was left for later"


@given(st.data())
def test_handle_frame_never_raises(data: st.DataObject) -> None:
    core = RouterCore(K1, T0)
    port, _ = core.add_peer(K3.public_key, 3, T0)
    other, _ = core.add_peer(K2.public_key, 1, T0)
    now = T0
    for _ in range(data.draw(st.integers(1, 6))):
        frame = bytearray(data.draw(st.sampled_from(SEEDS)))
        for _ in range(data.draw(st.integers(0, 3))):
            at = data.draw(st.integers(0, len(frame) - 1))
            frame[at] = data.draw(st.integers(0, 255))
        if data.draw(st.booleans()):
            frame = frame[: data.draw(st.integers(0, len(frame)))]
        now += data.draw(st.floats(0, 2))
        target = data.draw(st.sampled_from([port, other]))
        closed = {o.port for o in core.handle_frame(target, bytes(frame), now) if isinstance(o, ClosePeer)}
        check_invariants(core)
        now = max(now, core.next_deadline())
        closed |= {o.port for o in core.handle_timer(now) if isinstance(o, ClosePeer)}
        check_invariants(core, now)
        assert not closed & set(core.peers), "a closed peer is still in the peer table"
