"""The emulated medium, on a fake clock: delay, jitter without reordering,
rate and its time-bounded queue, loss, broadcasts and links going down."""

from __future__ import annotations

import random

import pytest

from bench.testbed.medium import LinkShape, Medium, mac_of, node_of_mac

BROADCAST = b"\xff" * 6


def frame(dst: int | None, src: int, size: int = 100) -> bytes:
    head = (BROADCAST if dst is None else mac_of(dst)) + mac_of(src) + b"\x08\x00"
    return head + bytes(size - len(head))


def test_mac_addresses_name_their_node() -> None:
    for node in (0, 1, 255, 256, 65535):
        assert node_of_mac(mac_of(node)) == node
    assert node_of_mac(b"\x02\x00\x00\x00\x00\x01") is None


def test_a_frame_arrives_after_the_delay_at_the_node_it_names() -> None:
    medium = Medium(3)
    medium.set_link(0, 1, LinkShape(delay_s=0.025))
    medium.set_link(0, 2, LinkShape(delay_s=0.1))
    (delivery,) = medium.accept(0, frame(1, 0), 10.0, random.Random(1))
    assert delivery.port == 1
    assert delivery.at == pytest.approx(10.025)
    assert medium.accept(1, frame(2, 1), 10.0, random.Random(1)) == []  # no link 1-2
    assert medium.drops["no link"] == 1


def test_broadcasts_reach_every_neighbour_across_its_own_link() -> None:
    medium = Medium(4)
    medium.set_link(0, 1, LinkShape(delay_s=0.01))
    medium.set_link(0, 2, LinkShape(delay_s=0.02))
    out = medium.accept(0, frame(None, 0), 0.0, random.Random(1))
    assert sorted((d.port, round(d.at, 6)) for d in out) == [(1, 0.01), (2, 0.02)]


def test_jitter_never_reorders_frames_on_one_link() -> None:
    medium = Medium(2)
    medium.set_link(0, 1, LinkShape(delay_s=0.05, jitter_s=0.02))
    rng = random.Random(7)
    arrivals = [medium.accept(0, frame(1, 0), i * 0.001, rng)[0].at for i in range(500)]
    assert arrivals == sorted(arrivals)
    assert min(arrivals[i] - i * 0.001 for i in range(500)) >= 0.03 - 1e-9
    assert max(arrivals[i] - i * 0.001 for i in range(500)) <= 0.07 + 1e-9


def test_rate_serialises_frames_and_the_queue_is_bounded_in_time() -> None:
    medium = Medium(2)
    # 1000-byte frames at 8 Mbit/s: 1 ms each; the queue holds 5 ms of them.
    medium.set_link(0, 1, LinkShape(rate_bps=8e6, queue_s=0.005))
    rng = random.Random(1)
    arrivals = [medium.accept(0, frame(1, 0, 1000), 0.0, rng) for _ in range(10)]
    delivered = [a[0].at for a in arrivals if a]
    assert delivered == pytest.approx([0.001 * (i + 1) for i in range(6)])
    assert medium.drops["queue"] == 4
    # Once the queue drains, frames pass again.
    assert medium.accept(0, frame(1, 0, 1000), 1.0, rng)[0].at == pytest.approx(1.001)


def test_loss_is_the_share_it_was_given() -> None:
    medium = Medium(2)
    medium.set_link(0, 1, LinkShape(loss=0.02), both_ways=False)
    medium.set_link(1, 0, LinkShape(), both_ways=False)
    rng = random.Random(3)
    passed = sum(len(medium.accept(0, frame(1, 0), i * 1e-3, rng)) for i in range(20_000))
    assert 0.975 < passed / 20_000 < 0.985
    assert medium.drops["loss"] == 20_000 - passed
    # Only that direction loses.
    back = sum(len(medium.accept(1, frame(0, 1), 30 + i * 1e-3, rng)) for i in range(2000))
    assert back == 2000


def test_a_link_down_loses_everything_and_up_again_carries() -> None:
    medium = Medium(2)
    medium.set_link(0, 1, LinkShape(delay_s=0.001))
    medium.set_up(0, 1, False)
    assert medium.accept(0, frame(1, 0), 0.0, random.Random(1)) == []
    assert medium.accept(1, frame(None, 1), 0.0, random.Random(1)) == []
    assert medium.neighbours(0) == []
    medium.set_up(0, 1, True)
    assert len(medium.accept(0, frame(1, 0), 1.0, random.Random(1))) == 1
    medium.set_link(0, 1, None)
    assert medium.accept(0, frame(1, 0), 2.0, random.Random(1)) == []


def test_bad_shapes_and_nodes_are_refused() -> None:
    with pytest.raises(ValueError, match="loss"):
        LinkShape(loss=1.5)
    with pytest.raises(ValueError, match="negative"):
        LinkShape(delay_s=-1)
    medium = Medium(2)
    with pytest.raises(ValueError, match="no node"):
        medium.set_link(0, 2, LinkShape())
    with pytest.raises(ValueError, match="different"):
        medium.set_link(1, 1, LinkShape())
    assert medium.accept(0, b"short", 0.0, random.Random(1)) == []
    assert medium.drops["runt"] == 1
