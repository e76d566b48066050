from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.wire import (
    FRAME_HEADER_SIZE,
    FULL_WATERMARK,
    DecodeError,
    EncodeError,
    Frame,
    PublicKey,
    TrafficFrame,
    Watermark,
    decode_frame,
    encode_frame,
    rewrite_traffic,
    traffic_route,
)
from router.wire.fastpath import cut_frames, frame_length, traffic_flow

from .strategies import frames as any_frames
from .strategies import traffic_frames

DEST = PublicKey(b"\x42" * 32)
SRC = PublicKey(b"\x24" * 32)
W = PublicKey(b"\x30" * 32)


def test_route_fields_snek() -> None:
    raw = encode_frame(TrafficFrame((), (1, 2), DEST, SRC, b"payload", Watermark(W, 5), hop_limit=7))
    route = traffic_route(raw)
    assert route.destination_key == DEST
    assert route.destination == b""
    assert (route.watermark_key, route.watermark_sequence) == (W, 5)
    # header 10 + payload length 2 + dest coords 2 + src coords 4 + two keys 64
    assert route.watermark_offset == 82
    assert route.watermark_end == 82 + 33
    assert route.hop_limit == 7


def test_route_fields_tree() -> None:
    raw = encode_frame(TrafficFrame((1, 300), (), DEST, SRC, b"x"))
    route = traffic_route(raw)
    assert route.destination == bytes.fromhex("01822c")
    assert route.watermark_offset == -1
    assert route.watermark_key == FULL_WATERMARK.key


@pytest.mark.parametrize("sequence", [0, 1, 127, 128, 300, (1 << 64) - 1])
def test_rewrite_watermark_changes_only_the_watermark(sequence: int) -> None:
    frame = TrafficFrame((), (3,), DEST, SRC, b"abc" * 10, Watermark(W, 200), hop_limit=4)
    raw = encode_frame(frame)
    new = Watermark(PublicKey(b"\x10" * 32), sequence)
    rewritten = rewrite_traffic(raw, traffic_route(raw), watermark=new, hop_limit=3)
    assert decode_frame(rewritten) == TrafficFrame((), (3,), DEST, SRC, b"abc" * 10, new, hop_limit=3)


def test_rewrite_hop_limit_only_keeps_bytes() -> None:
    raw = encode_frame(TrafficFrame((5,), (), DEST, SRC, b"abc", hop_limit=9))
    out = rewrite_traffic(raw, traffic_route(raw), hop_limit=8)
    assert out[7] == 8 and out[:7] == raw[:7] and out[8:] == raw[8:]


def test_rewrite_watermark_on_tree_frame_refused() -> None:
    raw = encode_frame(TrafficFrame((5,), (), DEST, SRC, b"abc"))
    with pytest.raises(EncodeError, match="no watermark"):
        rewrite_traffic(raw, traffic_route(raw), watermark=Watermark(W, 1))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b[:5] + b"\x02" + b[6:],  # not traffic
        lambda b: b[:-1],  # length field disagrees
        lambda b: b[:10] + b"\x00\x09" + b[12:],  # payload length disagrees
        lambda b: b"pinf" + b[4:],  # magic
    ],
)
def test_malformed(mutate: object) -> None:
    raw = encode_frame(TrafficFrame((), (1,), DEST, SRC, b"payload", Watermark(W, 5)))
    with pytest.raises(DecodeError):
        traffic_route(mutate(raw))  # type: ignore[operator]


@given(traffic_frames())
def test_the_flow_is_the_source_keys_first_eight_bytes(frame: TrafficFrame) -> None:
    raw = encode_frame(frame)
    assert traffic_flow(raw) == int.from_bytes(bytes(frame.source_key)[:8], "big")


@given(st.binary(max_size=200))
def test_the_flow_of_any_bytes_is_a_number_never_an_error(data: bytes) -> None:
    assert 0 <= traffic_flow(data) < 1 << 64


# ------------------------------------------------------------ cutting a stream into frames


@given(st.lists(any_frames, max_size=8), st.binary(max_size=FRAME_HEADER_SIZE - 1))
def test_a_stream_is_cut_into_its_frames_up_to_one_not_yet_whole(frames: list[Frame], tail: bytes) -> None:
    encoded = [encode_frame(f) for f in frames]
    stream = b"".join(encoded)
    cut: list[bytes] = []
    assert cut_frames(stream + tail, 0, cut) == len(stream)
    assert cut == encoded
    if encoded:  # the last frame less one byte: left for the next read
        cut = []
        assert cut_frames(stream[:-1], 0, cut) == len(stream) - len(encoded[-1])
        assert cut == encoded[:-1]


def test_cutting_starts_where_it_is_told_and_refuses_what_cannot_be_a_frame() -> None:
    one = encode_frame(TrafficFrame((), (), DEST, SRC, b"x"))
    cut: list[bytes] = []
    assert cut_frames(b"junk" + one, 4, cut) == 4 + len(one) and cut == [one]
    assert frame_length(one, 0) == len(one)
    with pytest.raises(DecodeError, match="magic"):
        cut_frames(one + b"PINE" + one[4:], 0, [])
    short = bytearray(one)
    short[8:10] = (FRAME_HEADER_SIZE - 1).to_bytes(2, "big")
    with pytest.raises(DecodeError, match="impossible frame length 9"):
        cut_frames(bytes(short), 0, [])
