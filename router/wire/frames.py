"""Frames: the 10-byte header and the five frame types of Pinecone v1.

Header: ``"pine" | version (0) | type | extra | hop limit | u16 BE total length``
(the header included).  Reference: ``types/frame.go``.

Bodies, after the header:

=================  ===========================================================
keepalive          nothing
tree announcement  u16 payload length | announcement
bootstrap          u16 payload length | destination key | watermark key |
                   watermark sequence (varu64) | bootstrap body
traffic            u16 payload length | destination coordinates | source
                   coordinates | destination key | source key | [watermark key |
                   watermark sequence, only when the destination coordinates
                   are empty] | payload
wakeup broadcast   u16 payload length | source key | broadcast body
=================  ===========================================================

Decoding is strict where the reference is lax: an unknown version or type,
length fields that disagree with each other or with the bytes given, and
trailing bytes are all :class:`DecodeError`.  Frames hold their payloads as raw
bytes; :mod:`router.wire.announcement` and :mod:`router.wire.snake` parse them,
because whether a signature needs checking is the router's decision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from router.wire.coordinates import Coordinates, decode_coordinates, encode_coordinates
from router.wire.errors import DecodeError, EncodeError
from router.wire.keys import PUBLIC_KEY_SIZE, PublicKey
from router.wire.snake import FULL_WATERMARK, Watermark
from router.wire.varu64 import decode_varu64, encode_varu64

FRAME_MAGIC = b"pine"
FRAME_VERSION = 0
FRAME_HEADER_SIZE = 10
FRAME_TYPE_INDEX = 5
"""Where in the header the frame type is: magic (4), version (1), type (1), ..."""
MAX_FRAME_SIZE = 0xFFFF
"""The u16 length field bounds every frame, header included."""
MAX_HOP_LIMIT = 10
"""The reference's starting hop limit (``types.MaxHopLimit``)."""


class FrameType(IntEnum):
    KEEPALIVE = 0
    TREE_ANNOUNCEMENT = 1
    BOOTSTRAP = 2
    TRAFFIC = 3
    WAKEUP_BROADCAST = 4


@dataclass(frozen=True, slots=True)
class Keepalive:
    hop_limit: int = 0
    extra: int = 0


@dataclass(frozen=True, slots=True)
class TreeAnnouncementFrame:
    payload: bytes
    hop_limit: int = 0
    extra: int = 0


@dataclass(frozen=True, slots=True)
class BootstrapFrame:
    destination_key: PublicKey
    watermark: Watermark
    payload: bytes
    hop_limit: int = 0
    extra: int = 0


@dataclass(frozen=True, slots=True)
class TrafficFrame:
    """Overlay traffic.  ``watermark`` is only carried on the wire when
    ``destination`` is empty (SNEK routing); with coordinates it is the full mask."""

    destination: Coordinates
    source: Coordinates
    destination_key: PublicKey
    source_key: PublicKey
    payload: bytes
    watermark: Watermark = FULL_WATERMARK
    hop_limit: int = 0
    extra: int = 0


@dataclass(frozen=True, slots=True)
class WakeupBroadcastFrame:
    source_key: PublicKey
    payload: bytes
    hop_limit: int = 0
    extra: int = 0


Frame = Keepalive | TreeAnnouncementFrame | BootstrapFrame | TrafficFrame | WakeupBroadcastFrame


# --------------------------------------------------------------------- encode


def _header(frame_type: FrameType, extra: int, hop_limit: int, body: bytes) -> bytes:
    total = FRAME_HEADER_SIZE + len(body)
    if total > MAX_FRAME_SIZE:
        raise EncodeError(f"frame of {total} bytes exceeds the {MAX_FRAME_SIZE}-byte maximum")
    if not (0 <= extra <= 0xFF and 0 <= hop_limit <= 0xFF):
        raise EncodeError("frame extra and hop limit must each fit in one byte")
    return FRAME_MAGIC + bytes((FRAME_VERSION, frame_type, extra, hop_limit)) + total.to_bytes(2, "big")


def _payload_length(payload: bytes) -> bytes:
    if len(payload) > 0xFFFF:
        raise EncodeError(f"payload of {len(payload)} bytes does not fit a u16 length")
    return len(payload).to_bytes(2, "big")


def _key(key: bytes, what: str) -> bytes:
    if len(key) != PUBLIC_KEY_SIZE:
        raise EncodeError(f"{what} must be {PUBLIC_KEY_SIZE} bytes, got {len(key)}")
    return bytes(key)


def encode_frame(frame: Frame) -> bytes:
    """The wire bytes of ``frame``; raises :class:`EncodeError` if it cannot be sent."""
    if isinstance(frame, TrafficFrame):
        body = (
            _payload_length(frame.payload)
            + encode_coordinates(frame.destination)
            + encode_coordinates(frame.source)
            + _key(frame.destination_key, "destination key")
            + _key(frame.source_key, "source key")
        )
        if not frame.destination:
            body += _key(frame.watermark.key, "watermark key") + encode_varu64(frame.watermark.sequence)
        elif frame.watermark != FULL_WATERMARK:
            raise EncodeError("a traffic frame with destination coordinates carries no watermark")
        body += frame.payload
        return _header(FrameType.TRAFFIC, frame.extra, frame.hop_limit, body) + body
    if isinstance(frame, Keepalive):
        return _header(FrameType.KEEPALIVE, frame.extra, frame.hop_limit, b"")
    if isinstance(frame, TreeAnnouncementFrame):
        body = _payload_length(frame.payload) + frame.payload
        return _header(FrameType.TREE_ANNOUNCEMENT, frame.extra, frame.hop_limit, body) + body
    if isinstance(frame, BootstrapFrame):
        body = (
            _payload_length(frame.payload)
            + _key(frame.destination_key, "destination key")
            + _key(frame.watermark.key, "watermark key")
            + encode_varu64(frame.watermark.sequence)
            + frame.payload
        )
        return _header(FrameType.BOOTSTRAP, frame.extra, frame.hop_limit, body) + body
    if isinstance(frame, WakeupBroadcastFrame):
        body = _payload_length(frame.payload) + _key(frame.source_key, "source key") + frame.payload
        return _header(FrameType.WAKEUP_BROADCAST, frame.extra, frame.hop_limit, body) + body
    raise EncodeError(f"not a frame: {type(frame).__name__}")


# --------------------------------------------------------------------- decode

_FRAME_TYPES: tuple[FrameType | None, ...] = tuple(
    next((t for t in FrameType if t == n), None) for n in range(256)
)
"""Frame types by type byte (``None`` where unknown): a lookup is much cheaper
than calling the enum."""


def check_header(data: bytes | bytearray | memoryview) -> FrameType:
    """Validate the header of one complete frame; return its type."""
    if len(data) < FRAME_HEADER_SIZE:
        raise DecodeError(f"frame truncated: {len(data)} bytes is shorter than a header")
    if data[:4] != FRAME_MAGIC:
        raise DecodeError("frame does not start with the magic bytes 'pine'")
    if data[4] != FRAME_VERSION:
        raise DecodeError(f"unsupported frame version {data[4]}")
    total = (data[8] << 8) | data[9]
    if total != len(data):
        raise DecodeError(f"frame length field says {total} bytes, got {len(data)}")
    kind = _FRAME_TYPES[data[FRAME_TYPE_INDEX]]
    if kind is None:
        raise DecodeError(f"unknown frame type {data[FRAME_TYPE_INDEX]}")
    return kind


def _read_payload_length(data: bytes) -> int:
    if len(data) < FRAME_HEADER_SIZE + 2:
        raise DecodeError("frame truncated before its payload length")
    return (data[10] << 8) | data[11]


def _read_key(data: bytes, offset: int, what: str) -> tuple[PublicKey, int]:
    end = offset + PUBLIC_KEY_SIZE
    if end > len(data):
        raise DecodeError(f"frame truncated in {what}")
    return PublicKey(data[offset:end]), end


def _take_payload(data: bytes, offset: int, length: int) -> bytes:
    if offset + length != len(data):
        raise DecodeError(f"payload length says {length} bytes but {len(data) - offset} remain in the frame")
    return data[offset:]


def _decode_keepalive(data: bytes) -> Keepalive:
    if len(data) != FRAME_HEADER_SIZE:
        raise DecodeError("keepalive frame has a body")
    return Keepalive(data[7], data[6])


def _decode_announcement_frame(data: bytes) -> TreeAnnouncementFrame:
    length = _read_payload_length(data)
    return TreeAnnouncementFrame(_take_payload(data, 12, length), data[7], data[6])


def _decode_bootstrap(data: bytes) -> BootstrapFrame:
    length = _read_payload_length(data)
    destination, offset = _read_key(data, 12, "destination key")
    wm_key, offset = _read_key(data, offset, "watermark key")
    wm_seq, offset = decode_varu64(data, offset)
    payload = _take_payload(data, offset, length)
    return BootstrapFrame(destination, Watermark(wm_key, wm_seq), payload, data[7], data[6])


def _decode_traffic(data: bytes) -> TrafficFrame:
    length = _read_payload_length(data)
    destination, offset = decode_coordinates(data, 12)
    source, offset = decode_coordinates(data, offset)
    dest_key, offset = _read_key(data, offset, "destination key")
    src_key, offset = _read_key(data, offset, "source key")
    watermark = FULL_WATERMARK
    if not destination:
        wm_key, offset = _read_key(data, offset, "watermark key")
        wm_seq, offset = decode_varu64(data, offset)
        watermark = Watermark(wm_key, wm_seq)
    payload = _take_payload(data, offset, length)
    return TrafficFrame(destination, source, dest_key, src_key, payload, watermark, data[7], data[6])


def _decode_wakeup(data: bytes) -> WakeupBroadcastFrame:
    length = _read_payload_length(data)
    source, offset = _read_key(data, 12, "source key")
    return WakeupBroadcastFrame(source, _take_payload(data, offset, length), data[7], data[6])


_DECODERS: dict[FrameType, Callable[[bytes], Frame]] = {
    FrameType.KEEPALIVE: _decode_keepalive,
    FrameType.TREE_ANNOUNCEMENT: _decode_announcement_frame,
    FrameType.BOOTSTRAP: _decode_bootstrap,
    FrameType.TRAFFIC: _decode_traffic,
    FrameType.WAKEUP_BROADCAST: _decode_wakeup,
}


def decode_frame(data: bytes | bytearray | memoryview) -> Frame:
    """Decode exactly one complete frame; raise :class:`DecodeError` if malformed."""
    raw = bytes(data)
    return _DECODERS[check_header(raw)](raw)
