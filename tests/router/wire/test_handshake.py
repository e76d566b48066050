from __future__ import annotations

import pytest

from router.wire import DecodeError, EncodeError, SignatureError, build_handshake, parse_handshake
from tests.router.wire.keys import K1, K2


def test_round_trip() -> None:
    raw = build_handshake(K2)
    assert len(raw) == 104
    assert raw[:8] == bytes.fromhex("010000000000003b")  # version 1, reserved, capabilities
    assert raw[8:40] == K2.public_key
    assert parse_handshake(raw).public_key == K2.public_key


def test_bytes_one_to_three_are_signed_and_read_as_extensions() -> None:
    head = bytes((1, 9, 9, 9)) + (0x3B).to_bytes(4, "big") + K1.public_key
    parsed = parse_handshake(head + K1.sign(head))
    assert parsed.public_key == K1.public_key
    assert parsed.extensions == 0x090909


def test_extensions_go_into_bytes_one_to_three_and_nowhere_else() -> None:
    plain = build_handshake(K1)
    extended = build_handshake(K1, 0xABCDEF)
    assert extended[:8] == bytes.fromhex("01abcdef0000003b")
    assert extended[8:40] == plain[8:40]
    assert parse_handshake(extended).extensions == 0xABCDEF
    assert parse_handshake(plain).extensions == 0


@pytest.mark.parametrize("bits", [-1, 1 << 24])
def test_extensions_wider_than_three_bytes_are_refused(bits: int) -> None:
    with pytest.raises(EncodeError, match="24 bits"):
        build_handshake(K1, bits)


def test_changed_extension_bytes_break_the_signature() -> None:
    raw = bytearray(build_handshake(K1, 1))
    raw[3] ^= 2
    with pytest.raises(SignatureError):
        parse_handshake(bytes(raw))


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (bytes((2, 0, 0, 0)) + (0x3B).to_bytes(4, "big"), "version 2"),
        (bytes((1, 0, 0, 0)) + (0x3F).to_bytes(4, "big"), "capabilities"),
    ],
)
def test_refused_even_when_signed(head: bytes, message: str) -> None:
    signed = head + K1.public_key
    with pytest.raises(DecodeError, match=message):
        parse_handshake(signed + K1.sign(signed))


def test_signature_by_another_key() -> None:
    head = bytes((1, 0, 0, 0)) + (0x3B).to_bytes(4, "big") + K1.public_key
    with pytest.raises(SignatureError):
        parse_handshake(head + K2.sign(head))


@pytest.mark.parametrize("size", [0, 1, 103, 105])
def test_wrong_size(size: int) -> None:
    with pytest.raises(DecodeError, match="104 bytes"):
        parse_handshake((build_handshake(K1) * 2)[:size])
