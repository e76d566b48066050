"""The forwarding fast path: a traffic frame's routing fields without decoding it.

A router forwarding traffic needs only the destination key, the destination
coordinates and the watermark.  :func:`traffic_route` reads those (and checks
every length on the way, since the bytes are untrusted) without building
coordinate tuples, payload copies or frame objects; :func:`rewrite_traffic`
returns the bytes with a new watermark and/or hop limit, touching nothing else.

The destination coordinates come back as their raw varu64 bytes: they are
hashable, so a next-hop cache can be keyed on them directly, and decoded only on
a cache miss (:func:`router.wire.coordinates.decode_coordinate_ports`), which
is also where their varu64s are fully validated.  The fast path validates the
framing: magic, version, type, every length field against the bytes present,
and the watermark.  Source coordinates are skipped; only a frame delivered
locally needs them, and it is decoded in full.
"""

from __future__ import annotations

from typing import final

from router.wire.errors import DecodeError, EncodeError
from router.wire.frames import FRAME_HEADER_SIZE, FRAME_MAGIC, FRAME_VERSION, FrameType
from router.wire.keys import FULL_MASK, PUBLIC_KEY_SIZE
from router.wire.snake import Watermark
from router.wire.varu64 import decode_varu64, encode_varu64

_TRAFFIC = FrameType.TRAFFIC.value
_PREFIX = FRAME_MAGIC + bytes((FRAME_VERSION, _TRAFFIC))
_M0, _M1, _M2, _M3 = FRAME_MAGIC


@final
class TrafficRoute:
    """Routing fields of one traffic frame.

    Built once per forwarded frame, so it is a plain class with slots rather
    than a frozen dataclass (whose ``__init__`` costs several times more): when
    this module is compiled it is a native class, built and read without the
    interpreter.  Its fields are not changed after it is made.
    ``watermark_offset`` is where the watermark key starts in the frame, or -1
    when the frame carries destination coordinates (and so no watermark);
    ``watermark_end`` is the offset just past its sequence.
    """

    __slots__ = (
        "destination",
        "destination_key",
        "hop_limit",
        "source_key_offset",
        "watermark_end",
        "watermark_key",
        "watermark_offset",
        "watermark_sequence",
    )

    def __init__(
        self,
        destination_key: bytes,
        destination: bytes,
        watermark_key: bytes,
        watermark_sequence: int,
        watermark_offset: int,
        watermark_end: int,
        hop_limit: int,
        source_key_offset: int,
    ) -> None:
        self.destination_key = destination_key
        self.destination = destination
        self.watermark_key = watermark_key
        self.watermark_sequence = watermark_sequence
        self.watermark_offset = watermark_offset
        self.watermark_end = watermark_end
        self.hop_limit = hop_limit
        self.source_key_offset = source_key_offset

    def __repr__(self) -> str:
        return (
            f"TrafficRoute(destination_key={self.destination_key!r}, destination={self.destination!r}, "
            f"watermark_key={self.watermark_key!r}, watermark_sequence={self.watermark_sequence}, "
            f"watermark_offset={self.watermark_offset}, watermark_end={self.watermark_end}, "
            f"hop_limit={self.hop_limit}, source_key_offset={self.source_key_offset})"
        )


def frame_length(data: bytes, offset: int) -> int:
    """The length of the frame whose header starts at ``offset`` (at least
    :data:`FRAME_HEADER_SIZE` bytes must be there); :class:`DecodeError` where
    the bytes cannot start a frame (no magic bytes, a length shorter than a
    header): the stream is broken."""
    if data[offset] != _M0 or data[offset + 1] != _M1 or data[offset + 2] != _M2 or data[offset + 3] != _M3:
        raise DecodeError("frame without the magic bytes")
    length = (data[offset + 8] << 8) | data[offset + 9]
    if length < FRAME_HEADER_SIZE:
        raise DecodeError(f"impossible frame length {length}")
    return length


def cut_frames(data: bytes, start: int, frames: list[bytes]) -> int:
    """Append to ``frames`` each complete frame in ``data`` from ``start`` on;
    the offset just past the last one (the start of a frame not yet whole).
    :class:`DecodeError` as :func:`frame_length` finds it: no frame cut before
    it may be trusted either."""
    size = len(data)
    offset = start
    while size - offset >= FRAME_HEADER_SIZE:
        length = frame_length(data, offset)
        if size - offset < length:
            break
        frames.append(data[offset : offset + length])
        offset += length
    return offset


def is_traffic_frame(data: bytes) -> bool:
    """Whether a complete frame's header says traffic, of the version we know
    (the rest of the header is checked by :func:`traffic_route`)."""
    return len(data) > 5 and data[5] == _TRAFFIC and data[4] == FRAME_VERSION


def traffic_route(data: bytes) -> TrafficRoute:
    """Routing fields of the traffic frame ``data``; :class:`DecodeError` if malformed."""
    size = len(data)
    if size < FRAME_HEADER_SIZE + 6 or data[:6] != _PREFIX:
        raise DecodeError("not a complete traffic frame")
    if ((data[8] << 8) | data[9]) != size:
        raise DecodeError("frame length field disagrees with the frame")
    payload_length = (data[10] << 8) | data[11]
    dest_len = (data[12] << 8) | data[13]
    dest_end = 14 + dest_len
    if dest_end + 2 > size:
        raise DecodeError("traffic frame truncated in destination coordinates")
    if dest_len and data[dest_end - 1] >= 0x80:
        raise DecodeError("destination coordinates end inside a varu64")
    src_len = (data[dest_end] << 8) | data[dest_end + 1]
    key_at = dest_end + 2 + src_len
    src_key_at = key_at + PUBLIC_KEY_SIZE
    fields_end = src_key_at + PUBLIC_KEY_SIZE
    if fields_end > size:
        raise DecodeError("traffic frame truncated in keys")
    if dest_len:
        wm_key: bytes = FULL_MASK
        wm_seq = 0
        wm_at = -1
        end = fields_end
    else:
        wm_at = fields_end
        if wm_at + PUBLIC_KEY_SIZE >= size:
            raise DecodeError("traffic frame truncated in watermark")
        wm_key = data[wm_at : wm_at + PUBLIC_KEY_SIZE]
        wm_seq, end = decode_varu64(data, wm_at + PUBLIC_KEY_SIZE)
    if end + payload_length != size:
        raise DecodeError("traffic payload length disagrees with the frame")
    return TrafficRoute(
        data[key_at:src_key_at],
        data[14:dest_end],
        wm_key,
        wm_seq,
        wm_at,
        end if wm_at >= 0 else -1,
        data[7],
        src_key_at,
    )


def traffic_flow(data: bytes) -> int:
    """A traffic frame's source, as the first eight bytes of its source key (0
    when the frame is too short to hold one): what a queue tells flows apart by.
    Never raises; the frame is expected to have passed :func:`traffic_route`."""
    size = len(data)
    if size < 16:
        return 0
    dest_end = 14 + ((data[12] << 8) | data[13])
    if dest_end + 2 > size:
        return 0
    at = dest_end + 2 + ((data[dest_end] << 8) | data[dest_end + 1]) + PUBLIC_KEY_SIZE
    if at + 8 > size:
        return 0
    return int.from_bytes(data[at : at + 8], "big")


def watermark_bytes(watermark: Watermark) -> bytes:
    """A watermark as it sits in a traffic frame: key, then varu64 sequence."""
    if len(watermark.key) != PUBLIC_KEY_SIZE:
        raise EncodeError("watermark key must be 32 bytes")
    return watermark.key + encode_varu64(watermark.sequence)


def splice_watermark(data: bytes, route: TrafficRoute, wire: bytes, hop_limit: int) -> bytes:
    """``data`` with its watermark replaced by ``wire`` (see :func:`watermark_bytes`)
    and its hop limit set, in one copy; the total length field follows the
    watermark's varu64, which may grow or shrink."""
    start, end = route.watermark_offset, route.watermark_end
    if start < 0:
        raise EncodeError("frame has destination coordinates and carries no watermark")
    if not 0 <= hop_limit <= 0xFF:
        raise EncodeError("hop limit must fit in one byte")
    size = len(data) - (end - start) + len(wire)
    if size > 0xFFFF:
        raise EncodeError("rewritten frame would exceed the maximum frame size")
    return b"".join((data[:7], bytes((hop_limit, size >> 8, size & 0xFF)), data[10:start], wire, data[end:]))


def rewrite_traffic(
    data: bytes,
    route: TrafficRoute,
    *,
    watermark: Watermark | None = None,
    hop_limit: int | None = None,
) -> bytes:
    """``data`` with its watermark and/or hop limit replaced.

    The watermark can only be rewritten on a frame that carries one (no
    destination coordinates).
    """
    limit = route.hop_limit if hop_limit is None else hop_limit
    if watermark is not None:
        return splice_watermark(data, route, watermark_bytes(watermark), limit)
    if not 0 <= limit <= 0xFF:
        raise EncodeError("hop limit must fit in one byte")
    return b"".join((data[:7], bytes((limit,)), data[8:]))


def strip_destination(data: bytes, route: TrafficRoute, watermark: Watermark, hop_limit: int) -> bytes:
    """A tree-routed frame turned SNEK-routed: destination coordinates removed and
    ``watermark`` added, as the reference does when no tree hop is closer."""
    if route.watermark_offset >= 0:
        raise EncodeError("frame is already routed by key")
    wire = watermark_bytes(watermark)
    dest_end = 14 + len(route.destination)
    keys_end = route.source_key_offset + PUBLIC_KEY_SIZE
    out = bytearray(data[:12])
    out += b"\x00\x00"
    out += data[dest_end:keys_end]
    out += wire
    out += data[keys_end:]
    if len(out) > 0xFFFF:
        raise EncodeError("rewritten frame would exceed the maximum frame size")
    out[7] = hop_limit
    out[8:10] = len(out).to_bytes(2, "big")
    return bytes(out)
