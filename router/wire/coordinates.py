"""Tree coordinates: the switch ports on the path from the root down to a node.

On the wire: a u16 big-endian *byte* length, then that many bytes of varu64 port
numbers (reference: ``types/coordinates.go``).  In memory: a tuple of ints.
"""

from __future__ import annotations

from collections.abc import Sequence

from router.wire.errors import DecodeError, EncodeError
from router.wire.varu64 import decode_varu64, encode_varu64

Coordinates = tuple[int, ...]
"""Port numbers from the root to a node; the root's own coordinates are ``()``."""

MAX_COORDINATES_BYTES = 0xFFFF


def encode_coordinates(ports: Sequence[int]) -> bytes:
    """Length-prefixed wire form of ``ports``."""
    body = b"".join(encode_varu64(p) for p in ports)
    if len(body) > MAX_COORDINATES_BYTES:
        raise EncodeError(f"coordinates too long: {len(body)} bytes")
    return len(body).to_bytes(2, "big") + body


def decode_coordinate_ports(body: bytes | memoryview) -> Coordinates:
    """Decode the varu64 ports of a coordinates body (without its length prefix)."""
    ports: list[int] = []
    offset = 0
    end = len(body)
    while offset < end:
        port, offset = decode_varu64(body, offset)
        ports.append(port)
    return tuple(ports)


_CONTINUATION_BYTES = bytes(range(0x80, 0x100))


def coordinate_depth(body: bytes) -> int:
    """How many ports a coordinates body holds, without decoding it: every varu64
    ends in exactly one byte below 0x80."""
    return len(body.translate(None, _CONTINUATION_BYTES))


def decode_coordinate_prefix(body: bytes | memoryview, count: int) -> Coordinates:
    """The first ``count`` ports of a coordinates body (all of them if it has fewer)."""
    ports: list[int] = []
    offset = 0
    end = len(body)
    while offset < end and len(ports) < count:
        port, offset = decode_varu64(body, offset)
        ports.append(port)
    return tuple(ports)


def decode_coordinates(data: bytes | memoryview, offset: int = 0) -> tuple[Coordinates, int]:
    """Decode length-prefixed coordinates at ``data[offset:]``.

    Returns ``(ports, offset_after)``.  The ports must fill the declared length
    exactly: a varu64 running past it is an error.
    """
    if offset + 2 > len(data):
        raise DecodeError("coordinates truncated: no length prefix")
    length = (data[offset] << 8) | data[offset + 1]
    start = offset + 2
    end = start + length
    if end > len(data):
        raise DecodeError(f"coordinates truncated: need {length} bytes, have {len(data) - start}")
    return decode_coordinate_ports(data[start:end]), end


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading ports ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def tree_distance(a: Sequence[int], b: Sequence[int]) -> int:
    """Hops between two nodes through the tree: up to their common ancestor and down."""
    return len(a) + len(b) - 2 * common_prefix_length(a, b)
