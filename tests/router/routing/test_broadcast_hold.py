"""Holding another node's broadcast a moment before flooding it on: neighbours
that sent us the same one get no copy, and every node still hears every
broadcast it heard without the hold."""

from __future__ import annotations

from dataclasses import replace

import pytest

from router.routing.broadcasts import hold_fraction
from router.routing.constants import BROADCAST_HOLD_S, MAX_HELD_BROADCASTS, WAKEUP_HOP_LIMIT
from router.routing.core import CoreConfig, RouterCore
from router.routing.outputs import BroadcastReceived, Output, SendFrame
from router.sim.mesh import Mesh, MeshConfig
from router.sim.topology import Topology
from router.wire import (
    FrameType,
    Identity,
    WakeupBroadcastFrame,
    decode_frame,
    encode_frame,
    sign_wakeup,
)
from tests.router.routing.routing_helpers import MID, T0

HELD = CoreConfig(broadcast_hold_s=BROADCAST_HOLD_S)


def broadcast_from(source: Identity, core: RouterCore, sequence: int = 1) -> bytes:
    body = sign_wakeup(source, sequence, *core.root())
    return encode_frame(WakeupBroadcastFrame(source.public_key, body.encode(), hop_limit=WAKEUP_HOP_LIMIT))


def broadcasts_sent(outputs: list[Output]) -> list[int]:
    return sorted(
        o.port for o in outputs if isinstance(o, SendFrame) and o.data[5] == FrameType.WAKEUP_BROADCAST
    )


def peers(core: RouterCore, count: int) -> list[int]:
    return [core.add_peer(Identity.generate().public_key, 3, T0)[0] for _ in range(count)]


def test_a_neighbour_that_sent_the_same_broadcast_gets_no_copy() -> None:
    core = RouterCore(MID, T0, HELD)
    a, b, c, d = peers(core, 4)
    source = Identity.generate()
    frame = broadcast_from(source, core)
    out = core.handle_frame(a, frame, T0 + 1)
    assert BroadcastReceived(source.public_key) in out  # heard at once
    assert broadcasts_sent(out) == []  # flooded on later
    due = T0 + 1 + BROADCAST_HOLD_S * hold_fraction(MID.public_key, source.public_key, 1)
    assert core._held_until == pytest.approx(due) and core.next_deadline() <= due
    assert broadcasts_sent(core.handle_frame(b, frame, T0 + 1.1)) == []  # b has it
    assert core.drops["broadcast duplicate"] == 1
    assert broadcasts_sent(core.handle_timer(due - 0.01)) == []
    sent = core.handle_timer(due)
    assert broadcasts_sent(sent) == [c, d]
    onward = decode_frame(next(o.data for o in sent if isinstance(o, SendFrame) and o.port == c))
    assert isinstance(onward, WakeupBroadcastFrame) and onward.hop_limit == WAKEUP_HOP_LIMIT - 1
    assert not core._held_broadcasts and core._held_until == float("inf")


def test_without_a_hold_a_broadcast_is_flooded_on_at_once_as_the_reference_does() -> None:
    core = RouterCore(MID, T0)
    a, b, c = peers(core, 3)
    out = core.handle_frame(a, broadcast_from(Identity.generate(), core), T0 + 1)
    assert broadcasts_sent(out) == [b, c]


def test_the_hold_is_bounded_and_past_it_broadcasts_go_on_at_once() -> None:
    core = RouterCore(MID, T0, replace(HELD, verify_signatures=False))
    a, b = peers(core, 2)
    for _ in range(MAX_HELD_BROADCASTS):
        assert broadcasts_sent(core.handle_frame(a, broadcast_from(Identity.generate(), core), T0 + 1)) == []
    assert len(core._held_broadcasts) == MAX_HELD_BROADCASTS
    assert broadcasts_sent(core.handle_frame(a, broadcast_from(Identity.generate(), core), T0 + 1)) == [b]
    core.handle_timer(T0 + 1 + BROADCAST_HOLD_S)
    assert not core._held_broadcasts


def test_the_hold_differs_from_node_to_node_within_its_bounds() -> None:
    fractions = {hold_fraction(Identity.generate().public_key, b"\x01" * 32, 7) for _ in range(50)}
    assert len(fractions) > 40 and all(0.5 <= f < 1.0 for f in fractions)
    key = Identity.generate().public_key
    assert hold_fraction(key, b"\x02" * 32, 1 << 70) == hold_fraction(key, b"\x02" * 32, 1 << 70)


def ring_with_chords(count: int) -> Topology:
    """The at-rest benchmark's network: a ring, and a chord from every third node across it."""
    ring = [(f"n{i}", f"n{(i + 1) % count}") for i in range(count)]
    chords = [(f"n{i}", f"n{(i + count // 2) % count}") for i in range(0, count, 3)]
    return Topology.build([f"n{i}" for i in range(count)], ring + chords)


def run_broadcasts(hold: float) -> tuple[set[tuple[str, bytes]], int]:
    """Who heard whose broadcast over three rounds of them, and how many
    broadcast frames crossed links."""
    mesh = Mesh.from_topology(
        ring_with_chords(10), seed=3, config=MeshConfig(core=CoreConfig(broadcast_hold_s=hold))
    )
    heard: set[tuple[str, bytes]] = set()

    def observe(source: str, destination: str, data: bytes) -> None:
        if data[5] == FrameType.WAKEUP_BROADCAST:
            frame = decode_frame(data)
            assert isinstance(frame, WakeupBroadcastFrame)
            heard.add((destination, bytes(frame.source_key)))

    mesh.run_for(90.0)  # settled, and the first round sent
    mesh.frame_observer = observe
    before = mesh.transmissions["WAKEUP_BROADCAST"]
    mesh.run_for(180.0)
    return heard, mesh.transmissions["WAKEUP_BROADCAST"] - before


def test_in_a_mesh_everyone_hears_the_same_broadcasts_from_fewer_copies() -> None:
    heard_at_once, copies_at_once = run_broadcasts(0.0)
    heard_held, copies_held = run_broadcasts(BROADCAST_HOLD_S)
    assert heard_held == heard_at_once
    assert len(heard_at_once) == 10 * 9  # everyone within the horizon of everyone
    assert copies_held <= 0.9 * copies_at_once, (copies_held, copies_at_once)
