"""The fair, time-bounded traffic queue in front of each peering's writer, on a fake clock."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from router.links.queues import CODEL_INTERVAL_S, CODEL_TARGET_S, SOJOURN_SAMPLES, FairQueue

FLOOD, SMALL, OTHER = 0xF1, 0x5A, 0x07
FRAME = 1100  # about a 1 KiB payload's traffic frame


def frame(tag: int, size: int = FRAME) -> bytes:
    return bytes([tag]) * size


def test_a_small_flow_waits_one_turn_behind_a_flood_from_the_same_port() -> None:
    # Both came in on port 1 (one neighbour), from different source nodes: the
    # small flow's frame goes out in the first turn, not after the flood's.
    queue = FairQueue(per_flow=4096, max_bytes=64 << 20)
    for _ in range(1000):
        queue.push(1, FLOOD, frame(1), 0.0)
    queue.push(1, SMALL, frame(2, 100), 0.0)
    out: list[bytes] = []
    queue.pop_batch(FRAME + 100, out, 0.001)
    assert [o[0] for o in out] == [1, 2]
    assert len(queue) == 999


def test_ports_share_first_then_sources_within_a_port() -> None:
    # Port 1 claims three sources, port 2 one: port 2 still gets half the turns.
    queue = FairQueue(per_flow=100, max_bytes=1 << 20)
    for _ in range(10):
        for source in (1, 2, 3):
            queue.push(1, source, frame(source, 10), 0.0)
        queue.push(2, OTHER, frame(9, 10), 0.0)
    out: list[bytes] = []
    queue.pop_batch(120, out, 0.0)
    assert [o[0] for o in out] == [1, 9, 2, 9, 3, 9, 1, 9, 2, 9, 3, 9]


def test_a_flood_alone_goes_out_in_one_batch_up_to_the_budget() -> None:
    queue = FairQueue(per_flow=100, max_bytes=1 << 20)
    for _ in range(10):
        queue.push(1, FLOOD, frame(1, 100), 0.0)
    out: list[bytes] = []
    assert queue.pop_batch(450, out, 0.0) == 500  # the frame that crosses the budget goes too
    assert len(out) == 5 and len(queue) == 5 and queue.size == 500


def test_per_flow_and_byte_bounds_drop_the_oldest_of_the_fattest_flow() -> None:
    queue = FairQueue(per_flow=3, max_bytes=1 << 20)
    for i in range(5):
        queue.push(1, FLOOD, bytes([i]) * 10, 0.0)
    assert len(queue) == 3 and queue.dropped == 2
    out: list[bytes] = []
    queue.pop_batch(1000, out, 0.0)
    assert [o[0] for o in out] == [2, 3, 4]

    bounded = FairQueue(per_flow=1000, max_bytes=16_000)
    bounded.push(2, SMALL, frame(2, 100), 0.0)
    for _ in range(20):
        bounded.push(1, FLOOD, frame(1, 1000), 0.0)
    assert bounded.size <= 16_000 and bounded.dropped > 0
    out = []
    bounded.pop_batch(1 << 20, out, 0.0)
    assert out[0][0] == 2 or out[1][0] == 2  # the small flow lost nothing
    assert sum(1 for o in out if o[0] == 2) == 1


def test_a_standing_queue_loses_frames_once_it_stays_above_the_target() -> None:
    queue = FairQueue(per_flow=100_000, max_bytes=1 << 30)
    now = 0.0
    sent = 0
    # The flood arrives at twice the rate the link takes it: its queue stands.
    for _ in range(2000):
        for _ in range(2):
            queue.push(1, FLOOD, frame(1), now)
        out: list[bytes] = []
        queue.pop_batch(FRAME, out, now)
        sent += len(out)
        now += 0.0005
    assert queue.late > 0
    # Nothing is dropped before the flow has stood above the target for an interval.
    first = FairQueue(per_flow=100_000, max_bytes=1 << 30)
    for _ in range(50):
        first.push(1, FLOOD, frame(1), 0.0)
    out = []
    first.pop_batch(FRAME, out, CODEL_TARGET_S * 2)
    first.pop_batch(FRAME, out, CODEL_TARGET_S * 2 + CODEL_INTERVAL_S / 2)
    assert first.late == 0 and len(out) == 2
    first.pop_batch(FRAME, out, CODEL_TARGET_S * 2 + CODEL_INTERVAL_S * 1.01)
    assert first.late == 1


def test_a_flow_that_drains_below_the_target_stops_losing_frames() -> None:
    queue = FairQueue(per_flow=100_000, max_bytes=1 << 30)
    for _ in range(100):
        queue.push(1, FLOOD, frame(1), 0.0)
    out: list[bytes] = []
    queue.pop_batch(FRAME, out, 0.05)
    queue.pop_batch(FRAME, out, 0.2)  # above target for an interval: dropping
    late = queue.late
    assert late >= 1
    queue.push(1, FLOOD, frame(1), 0.2)
    while len(queue) > 1:
        queue.pop_batch(1 << 20, out, 0.2)
    queue.pop_batch(FRAME, out, 0.201)  # waited 1 ms: under the target
    assert queue.late == late and len(queue) == 0


def test_small_flows_are_never_dropped_for_delay() -> None:
    # A single frame that waited long (a slow link) is not a standing queue.
    queue = FairQueue(per_flow=100, max_bytes=1 << 20)
    out: list[bytes] = []
    for i in range(100):
        queue.push(1, SMALL, frame(2, 200), i * 1.0)
        queue.pop_batch(FRAME, out, i * 1.0 + 0.5)
    assert queue.late == 0 and len(out) == 100


def test_waits_are_sampled_for_the_operator() -> None:
    queue = FairQueue(per_flow=10_000, max_bytes=1 << 30)
    assert queue.sojourn_quantiles() is None
    for i in range(100):
        queue.push(1, FLOOD, frame(1, 10), i / 1000)
    out: list[bytes] = []
    queue.pop_batch(1 << 20, out, 0.1)
    waits = queue.sojourn_quantiles()
    assert waits is not None
    median, p99 = waits
    assert abs(median - 0.05) < 0.002 and abs(p99 - 0.1) < 0.002


@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 5), st.integers(1, 300), st.booleans()),
        max_size=300,
    )
)
def test_counts_and_sizes_always_agree_with_what_is_held(
    ops: list[tuple[int, int, int, bool]],
) -> None:
    queue = FairQueue(per_flow=8, max_bytes=2000)
    now = 0.0
    pushed = popped = 0
    for port, flow, size, pop in ops:
        now += 0.003
        if pop:
            out: list[bytes] = []
            taken = queue.pop_batch(size * 3, out, now)
            assert taken == sum(len(o) for o in out)
            popped += len(out)
        else:
            queue.push(port, flow, bytes(size), now)
            pushed += 1
        assert queue.size <= 2000
        assert pushed == popped + len(queue) + queue.dropped + queue.late
    out = []
    queue.pop_batch(1 << 30, out, now)
    assert len(queue) == 0 and queue.size == 0
    assert len(queue.sojourn_quantiles() or ()) in (0, 2)
    assert SOJOURN_SAMPLES & (SOJOURN_SAMPLES - 1) == 0
