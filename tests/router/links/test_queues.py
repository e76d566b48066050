"""The per-source fair queue in front of each peering's writer."""

from __future__ import annotations

from router.links.queues import FairQueue


def test_fair_queue_bounds_frames_and_bytes_and_alternates() -> None:
    queue = FairQueue(per_source=3, bytes_per_source=250)
    for i in range(5):
        queue.push(1, bytes([i]) * 100)  # only two 100-byte frames fit in 250 bytes
    queue.push(2, b"x")
    assert len(queue) == 3 and queue.dropped == 3
    out: list[bytes] = []
    queue.pop_batch(10_000, out)
    assert [o[:1] for o in out] == [b"\x03", b"x", b"\x04"]  # round-robin between sources
    assert len(queue) == 0
    queue.push(3, b"y")
    assert len(queue) == 1
