"""Decoder fuzz: random and mutated bytes, whole and truncated at every length.

Every decoder must either succeed or raise the codec's own DecodeError; any
other exception (IndexError, struct.error, OverflowError, ...) fails the test.
A frame that does decode must re-encode to the same bytes (the codec accepts
only canonical encodings), and the forwarding fast path must agree with it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.wire import (
    DecodeError,
    TrafficFrame,
    decode_announcement,
    decode_bootstrap,
    decode_coordinates,
    decode_frame,
    decode_varu64,
    decode_wakeup,
    encode_frame,
    parse_handshake,
    traffic_route,
)
from tests.conftest import vectors_path
from tests.router.wire.keys import K1

Decoder = Callable[[bytes], object]

DECODERS: dict[str, Decoder] = {
    "frame": decode_frame,
    "traffic_route": traffic_route,
    "announcement": decode_announcement,
    "announcement_unverified": lambda b: decode_announcement(b, verify=False),
    "bootstrap": lambda b: decode_bootstrap(b, signer=K1.public_key),
    "wakeup": decode_wakeup,
    "handshake": parse_handshake,
    "coordinates": decode_coordinates,
    "varu64": decode_varu64,
}


def check(data: bytes) -> None:
    for name, decoder in DECODERS.items():
        try:
            decoder(data)
        except DecodeError:
            pass
        except Exception as exc:  # pragma: no cover - the failure we are hunting
            raise AssertionError(f"{name} raised {type(exc).__name__} on {data.hex()}") from exc
    try:
        frame = decode_frame(data)
    except DecodeError:
        return
    assert encode_frame(frame) == data
    if isinstance(frame, TrafficFrame):
        assert traffic_route(data).destination_key == frame.destination_key


def seed_corpus() -> list[bytes]:
    path = vectors_path()
    if not path.is_file():
        return []
    found: list[bytes] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key.endswith("hex") and isinstance(value, str):
                    found.append(bytes.fromhex(value))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(path.read_text()))
    return found


CORPUS = seed_corpus()


@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    check(data)


@given(st.binary(max_size=200))
def test_random_bytes_behind_a_valid_header(body: bytes) -> None:
    for frame_type in range(6):
        total = 10 + len(body)
        check(b"pine" + bytes((0, frame_type, 0, 0)) + total.to_bytes(2, "big") + body)


@pytest.mark.skipif(not CORPUS, reason="reference vectors not found; set $PINEWOOD_VECTORS")
def test_every_truncation_of_every_vector() -> None:
    for sample in CORPUS:
        for cut in range(len(sample) + 1):
            check(sample[:cut])


@pytest.mark.skipif(not CORPUS, reason="reference vectors not found; set $PINEWOOD_VECTORS")
@given(st.data())
def test_mutated_vectors(data: st.DataObject) -> None:
    sample = bytearray(data.draw(st.sampled_from(CORPUS)))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "set", "insert", "delete"]))
        at = data.draw(st.integers(0, max(len(sample) - 1, 0)))
        if op == "insert" or not sample:
            sample.insert(at, data.draw(st.integers(0, 255)))
        elif op == "delete":
            del sample[at]
        elif op == "flip":
            sample[at] ^= 1 << data.draw(st.integers(0, 7))
        else:
            sample[at] = data.draw(st.integers(0, 255))
    raw = bytes(sample)
    check(raw)
    cut = data.draw(st.integers(0, len(raw)))
    check(raw[:cut])
