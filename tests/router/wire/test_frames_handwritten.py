"""Byte-exact frames written out by hand, field by field, from the protocol description.

These do not depend on the reference vectors: they pin our reading of the format.
"""

from __future__ import annotations

import pytest

from router.wire import (
    FULL_WATERMARK,
    BootstrapFrame,
    DecodeError,
    EncodeError,
    FrameType,
    Keepalive,
    PublicKey,
    TrafficFrame,
    TreeAnnouncementFrame,
    WakeupBroadcastFrame,
    Watermark,
    check_header,
    decode_frame,
    encode_frame,
)

A = PublicKey(bytes(range(32)))  # 000102...1f
B = PublicKey(bytes(range(0x20, 0x40)))  # 202122...3f
W = PublicKey(b"\x11" * 32)


def h(*parts: str) -> bytes:
    return bytes.fromhex("".join(parts))


def test_keepalive() -> None:
    data = h(
        "70696e65",  # magic "pine"
        "00",  # frame version 0
        "00",  # type 0: keepalive
        "00",  # extra
        "00",  # hop limit
        "000a",  # total length 10: the header alone
    )
    assert encode_frame(Keepalive()) == data
    assert decode_frame(data) == Keepalive()


def test_tree_announcement() -> None:
    payload = b"\xaa\xbb\xcc"
    data = h(
        "70696e65 00 01 00 00",  # magic, version, type 1, extra, hop limit
        "000f",  # total length 15 = 10 + 2 + 3
        "0003",  # payload length 3
        "aabbcc",  # payload (the announcement bytes, opaque here)
    ).replace(b" ", b"")
    assert encode_frame(TreeAnnouncementFrame(payload)) == data
    assert decode_frame(data) == TreeAnnouncementFrame(payload)


def test_bootstrap() -> None:
    frame = BootstrapFrame(A, Watermark(W, 300), b"\x01\x02", hop_limit=10)
    data = h(
        "70696e65 00 02 00 0a".replace(" ", ""),  # magic, version, type 2, extra, hop limit 10
        "0050",  # total length 80 = 10 + 2 + 32 + 32 + 2 + 2
        "0002",  # payload length 2
        A.hex(),  # destination key
        W.hex(),  # watermark key
        "822c",  # watermark sequence 300 (varu64)
        "0102",  # payload (the bootstrap body, opaque here)
    )
    assert encode_frame(frame) == data
    assert decode_frame(data) == frame


def test_traffic_snek_routed_carries_watermark() -> None:
    frame = TrafficFrame((), (1, 2), A, B, b"hi", Watermark(W, 1))
    data = h(
        "70696e6500030000",  # magic, version, type 3, extra, hop limit 0
        "0075",  # total length 117 = 10 + 2 + 2 + 4 + 32 + 32 + 33 + 2
        "0002",  # payload length 2
        "0000",  # destination coordinates: none (so SNEK routing, watermark follows)
        "00020102",  # source coordinates: 2 bytes, ports 1 and 2
        A.hex(),  # destination key
        B.hex(),  # source key
        W.hex(),  # watermark key
        "01",  # watermark sequence 1
        "6869",  # payload "hi"
    )
    assert encode_frame(frame) == data
    assert decode_frame(data) == frame


def test_traffic_tree_routed_has_no_watermark() -> None:
    frame = TrafficFrame((1, 200), (3,), A, B, b"")
    data = h(
        "70696e6500030000",  # magic, version, type 3, extra, hop limit
        "0054",  # total length 84 = 10 + 2 + 5 + 3 + 64
        "0000",  # payload length 0
        "0003018148",  # destination coordinates: 3 bytes, ports 1 and 200 (81 48)
        "000103",  # source coordinates: port 3
        A.hex(),  # destination key
        B.hex(),  # source key; no watermark since destination coordinates are set
    )
    assert encode_frame(frame) == data
    decoded = decode_frame(data)
    assert decoded == frame
    assert isinstance(decoded, TrafficFrame) and decoded.watermark == FULL_WATERMARK


def test_wakeup_broadcast() -> None:
    frame = WakeupBroadcastFrame(B, b"\x05", hop_limit=3)
    data = h(
        "70696e6500040003",  # magic, version, type 4, extra, hop limit 3
        "002d",  # total length 45 = 10 + 2 + 32 + 1
        "0001",  # payload length 1
        B.hex(),  # source key
        "05",  # payload (the broadcast body, opaque here)
    )
    assert encode_frame(frame) == data
    assert decode_frame(data) == frame


def test_traffic_with_coordinates_refuses_a_watermark() -> None:
    with pytest.raises(EncodeError, match="watermark"):
        encode_frame(TrafficFrame((1,), (), A, B, b"", Watermark(W, 1)))


def test_oversized_frame_refused() -> None:
    with pytest.raises(EncodeError, match="exceeds"):
        encode_frame(TreeAnnouncementFrame(bytes(0xFFFF - 11)))
    # exactly the maximum is fine
    assert len(encode_frame(TreeAnnouncementFrame(bytes(0xFFFF - 12)))) == 0xFFFF


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("70696e6500000000", "shorter than a header"),
        ("70696e6600000000000a", "magic"),
        ("70696e6501000000000a", "version"),
        ("70696e6500090000000a", "unknown frame type"),
        ("70696e6500000000000b", "length field"),
        ("70696e6500000000000b00", "keepalive frame has a body"),
        ("70696e6500010000000f0004aabbcc", "payload length"),
        ("70696e6500010000000f0002aabbcc", "payload length"),
        ("70696e6500030000000c0000", "coordinates truncated"),
        ("70696e6500030000000f0000000301", "coordinates truncated"),
        ("70696e6500030000000f0000000181", "varu64 truncated"),
    ],
)
def test_malformed_frames(data: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_frame(bytes.fromhex(data))


@pytest.mark.parametrize("number", range(256))
def test_every_type_byte_reads_as_its_own_type_or_fails(number: int) -> None:
    header = b"pine\x00" + bytes([number]) + b"\x00\x00\x00\x0a"
    if number in set(FrameType):
        assert check_header(header) is FrameType(number)
    else:
        with pytest.raises(DecodeError, match=f"unknown frame type {number}"):
            check_header(header)
