from __future__ import annotations

import pytest

from router.wire import DecodeError, SignatureError, build_handshake, parse_handshake
from tests.router.wire.keys import K1, K2


def test_round_trip() -> None:
    raw = build_handshake(K2)
    assert len(raw) == 104
    assert raw[:8] == bytes.fromhex("010000000000003b")  # version 1, reserved, capabilities
    assert raw[8:40] == K2.public_key
    assert parse_handshake(raw).public_key == K2.public_key


def test_reserved_bytes_are_signed_but_not_interpreted() -> None:
    head = bytes((1, 9, 9, 9)) + (0x3B).to_bytes(4, "big") + K1.public_key
    assert parse_handshake(head + K1.sign(head)).public_key == K1.public_key


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
