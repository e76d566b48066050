"""Micro-benchmarks of the wire codec (pytest-benchmark).

Run with ``make bench``.  Each benchmark that has a natural floor sits beside a
baseline measured in the same run, so figures read as ratios: decoding a frame
against reading its header with ``struct``, verifying an announcement against
three bare ed25519 verifications.
"""

from __future__ import annotations

import struct
from typing import Any

from router.wire import (
    Identity,
    RootAnnouncement,
    TrafficFrame,
    Watermark,
    decode_announcement,
    decode_frame,
    encode_frame,
    traffic_route,
    verify_signature,
)

IDS = [Identity.from_seed(bytes([n]) * 32) for n in (1, 2, 3, 4)]
SRC, DST = IDS[3].public_key, IDS[2].public_key
SNEK_FRAME = encode_frame(TrafficFrame((), (1, 2, 7), DST, SRC, b"x" * 1200, Watermark(IDS[1].public_key, 9)))
TREE_FRAME = encode_frame(TrafficFrame((1, 3, 200), (1, 2, 7), DST, SRC, b"x" * 1200))
ANNOUNCEMENT = (
    RootAnnouncement.create(IDS[0].public_key, 7)
    .with_hop(IDS[0], 1)
    .with_hop(IDS[1], 3)
    .with_hop(IDS[2], 200)
)
HEADER = struct.Struct(">4sBBBBH")

Bench = Any  # pytest-benchmark's fixture type is not exported


def test_baseline_struct_header(benchmark: Bench) -> None:
    assert benchmark(HEADER.unpack_from, SNEK_FRAME)[0] == b"pine"


def test_decode_traffic_frame(benchmark: Bench) -> None:
    frame = benchmark(decode_frame, SNEK_FRAME)
    assert isinstance(frame, TrafficFrame) and frame.destination_key == DST


def test_traffic_route_snek(benchmark: Bench) -> None:
    assert benchmark(traffic_route, SNEK_FRAME).destination_key == DST


def test_traffic_route_tree(benchmark: Bench) -> None:
    assert benchmark(traffic_route, TREE_FRAME).destination == bytes.fromhex("01038148")


def test_baseline_three_ed25519_verifies(benchmark: Bench) -> None:
    raw = ANNOUNCEMENT.raw
    hops = ANNOUNCEMENT.hops
    signatures = [ANNOUNCEMENT.signature(i) for i in range(len(hops))]

    def three() -> bool:
        pairs = zip(hops, signatures, strict=True)
        return all(verify_signature(h.signer, raw[: h.signed_length], sig) for h, sig in pairs)

    assert benchmark(three)


def test_verify_announcement_3_hops(benchmark: Bench) -> None:
    assert benchmark(decode_announcement, ANNOUNCEMENT.raw).coordinates == (1, 3, 200)
