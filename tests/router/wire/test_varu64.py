from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.wire import (
    DecodeError,
    EncodeError,
    decode_varu64,
    encode_coordinates,
    encode_varu64,
    varu64_length,
)
from router.wire.coordinates import coordinate_depth, decode_coordinate_prefix


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, "00"),
        (127, "7f"),
        (128, "8100"),  # 0b1_0000000: high group 1 (with 0x80), low group 0
        (300, "822c"),  # 300 = 2*128 + 44: 0x82, 0x2c -- big-endian, not LEB128 (ac 02)
        (16383, "ff7f"),
        (16384, "818000"),
        ((1 << 64) - 1, "81ffffffffffffffff7f"),  # the widest value: ten bytes
    ],
)
def test_known_encodings(value: int, encoded: str) -> None:
    assert encode_varu64(value).hex() == encoded
    assert decode_varu64(bytes.fromhex(encoded)) == (value, len(encoded) // 2)
    assert varu64_length(value) == len(encoded) // 2


@given(st.integers(min_value=0, max_value=(1 << 64) - 1), st.binary(max_size=4))
def test_round_trip_with_offset_and_trailer(value: int, trailer: bytes) -> None:
    encoded = encode_varu64(value)
    assert len(encoded) == varu64_length(value)
    data = b"\x01" + encoded + trailer
    assert decode_varu64(data, 1) == (value, 1 + len(encoded))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("", "no bytes"),
        ("81", "continuation"),
        ("ffff", "continuation"),
        ("8000", "minimal"),
        ("82ffffffffffffffff7f", "overflows"),  # 2**64 * 2 - 1: eleven significant bits too many
        ("8181818181818181818101", "longer than 10"),
    ],
)
def test_malformed(data: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_varu64(bytes.fromhex(data))


@pytest.mark.parametrize("value", [-1, 1 << 64])
def test_unencodable(value: int) -> None:
    with pytest.raises(EncodeError):
        encode_varu64(value)


@given(st.lists(st.integers(0, 2**64 - 1), max_size=50), st.integers(0, 60))
def test_coordinate_depth_and_prefix_agree_with_a_full_decode(ports: list[int], count: int) -> None:
    body = encode_coordinates(ports)[2:]
    assert coordinate_depth(body) == len(ports)
    assert decode_coordinate_prefix(body, count) == tuple(ports[:count])
