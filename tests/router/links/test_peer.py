"""A peering's reassembly: the bytes of a stream, however the carrier cuts
them into reads, become the same frames in the same order, and bytes that
cannot start a frame close the peering."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from router.links.owner import LinkSettings
from router.links.peer import PeerLink
from router.wire import (
    FRAME_HEADER_SIZE,
    Identity,
    Keepalive,
    PublicKey,
    TrafficFrame,
    build_handshake,
    encode_frame,
)

PEER = Identity.generate()
FRAMES = [
    encode_frame(Keepalive()),
    encode_frame(TrafficFrame((), (), PublicKey(b"\x01" * 32), PEER.public_key, b"a" * 1000)),
    encode_frame(TrafficFrame((1, 2), (3,), PublicKey(b"\x02" * 32), PEER.public_key, b"")),
    encode_frame(TrafficFrame((), (), PublicKey(b"\x03" * 32), PEER.public_key, bytes(range(256)) * 20)),
]
STREAM = build_handshake(PEER) + b"".join(FRAMES * 3)


class Owner:
    """The node, as far as a link's reading goes: it takes every peer and
    keeps the frames it is given."""

    def __init__(self) -> None:
        self.identity = Identity.generate()
        self.handshake_bytes = build_handshake(self.identity)
        self.link_settings = LinkSettings(handshake_timeout=5.0, traffic_queue_frames=16)
        self.control_bytes_out: Counter[int] = Counter()
        self.received: list[bytes] = []
        self.reads = 0

    def admit_handshake(self, link: PeerLink) -> bool:
        return True

    def key_admissible(self, link: PeerLink, key: PublicKey) -> bool:
        return True

    def link_established(self, link: PeerLink) -> bool:
        return True

    def frames_received(self, link: PeerLink, frames: list[bytes]) -> None:
        assert all(type(f) is bytes for f in frames)
        self.received.extend(frames)
        self.reads += 1

    def link_lost(self, link: PeerLink) -> None:
        pass

    def link_writable(self, link: PeerLink) -> None:
        pass


def feed(reads: list[bytes]) -> tuple[Owner, PeerLink]:
    async def run() -> tuple[Owner, PeerLink]:
        owner = Owner()
        link = PeerLink(owner, None)
        for data in reads:
            link.data_received(data)
        return owner, link

    return asyncio.run(run())


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0), max_size=40))
def test_frames_come_out_whole_and_in_order_however_the_stream_is_cut(cuts: list[int]) -> None:
    owner, link = feed(split(STREAM, cuts))
    assert owner.received == FRAMES * 3
    assert link.close_reason == ""
    assert not link._buffer  # nothing left over once the stream ends on a frame


def test_one_read_byte_by_byte_and_all_at_once() -> None:
    for reads in ([STREAM[i : i + 1] for i in range(len(STREAM))], [STREAM]):
        owner, _ = feed(reads)
        assert owner.received == FRAMES * 3
    assert owner.reads == 1  # all at once: one batch for the node


def test_what_is_held_between_reads_is_one_frame_begun() -> None:
    half = len(FRAMES[1]) // 2
    head = build_handshake(PEER) + FRAMES[0] + FRAMES[1][:half]
    owner, link = feed([head])
    assert owner.received == [FRAMES[0]]
    assert bytes(link._buffer) == FRAMES[1][:half]


def test_bytes_that_cannot_start_a_frame_close_the_peering() -> None:
    broken = build_handshake(PEER) + FRAMES[0] + b"PINE" + FRAMES[1][4:]
    owner, link = feed([broken])
    assert link.close_reason == "frame without the magic bytes"
    assert owner.received == []  # nothing from a read that held a broken frame
    # The same when the broken header spans two reads.
    at = len(build_handshake(PEER)) + len(FRAMES[0]) + 3
    owner, link = feed([broken[:at], broken[at:]])
    assert link.close_reason == "frame without the magic bytes"
    short = bytearray(FRAMES[0])
    short[8:10] = (FRAME_HEADER_SIZE - 2).to_bytes(2, "big")
    _, link = feed([build_handshake(PEER) + bytes(short)])
    assert link.close_reason == f"impossible frame length {FRAME_HEADER_SIZE - 2}"
