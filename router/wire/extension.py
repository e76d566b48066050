"""Pinewood's routing extensions: announced in the handshake, used between
Pinewood nodes only.

**Negotiation.**  Bytes 1-3 of the handshake (:mod:`router.wire.handshake`),
which the reference writes as zeros and never reads, carry the
:class:`Extension` bits a node announces, big-endian.  A peering uses an
extension only when both ends announced it, so a reference node, which
announces nothing, never receives an extension frame.

**The extension frame** has the ordinary 10-byte header with frame type
``EXTENSION_FRAME_TYPE`` (which the reference does not define), then the same
u16 payload length as the other frame types (the header's extra byte and hop
limit are 0: an extension frame goes one hop), then a kind and its body:

``header (10) | u16 payload length | kind (1) | body``

============  ================================================================
path notice   direction (1: 0 towards the origin, 1 towards the end) | origin
              key (32) | sequence of the origin's bootstrap (varu64)
============  ================================================================

A path notice tells the next node along a bootstrap path that the path is
broken further on (:mod:`router.routing.repair_state`).  It names the path by
its origin and the bootstrap's sequence, which every node on the path keeps in
its route entry.  It is unsigned: it can only remove a route through its
sender, or ask an origin to send its own (signed) bootstrap again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag

from router.wire.errors import DecodeError, EncodeError
from router.wire.frames import FRAME_HEADER_SIZE, FRAME_MAGIC, FRAME_VERSION
from router.wire.keys import PUBLIC_KEY_SIZE, PublicKey
from router.wire.varu64 import decode_varu64, encode_varu64

EXTENSION_FRAME_TYPE = 0x20
"""The frame type of every extension frame (the reference's types end at 4)."""
EXTENSION_BITS = 24
"""Handshake bytes 1-3."""


class Extension(IntFlag):
    """The extensions a node announces in its handshake."""

    NONE = 0
    PATH_REPAIR = 1
    """Path notices: a broken bootstrap path is reported to the nodes along it."""


EXTENSION_NAMES: dict[str, Extension] = {"path-repair": Extension.PATH_REPAIR}
"""How settings and the simulator name each extension."""
KNOWN_EXTENSIONS = Extension.PATH_REPAIR


class ExtensionKind(IntEnum):
    PATH_NOTICE = 1


class Direction(IntEnum):
    TOWARDS_ORIGIN = 0
    """Back along the path to the node that sent the bootstrap: it must send it again."""
    TOWARDS_END = 1
    """Forward along the path: the route entries for it lead nowhere now."""


@dataclass(frozen=True, slots=True)
class PathNotice:
    direction: Direction
    origin: PublicKey
    sequence: int


def extension_names(bits: int) -> list[str]:
    """The setting names of the known extensions in ``bits``."""
    return [name for name, bit in EXTENSION_NAMES.items() if bits & bit]


def encode_path_notice(notice: PathNotice) -> bytes:
    if len(notice.origin) != PUBLIC_KEY_SIZE:
        raise EncodeError(f"origin key must be {PUBLIC_KEY_SIZE} bytes, got {len(notice.origin)}")
    payload = (
        bytes((ExtensionKind.PATH_NOTICE, notice.direction))
        + bytes(notice.origin)
        + encode_varu64(notice.sequence)
    )
    total = FRAME_HEADER_SIZE + 2 + len(payload)
    return (
        FRAME_MAGIC
        + bytes((FRAME_VERSION, EXTENSION_FRAME_TYPE, 0, 0))
        + total.to_bytes(2, "big")
        + len(payload).to_bytes(2, "big")
        + payload
    )


def is_extension_frame(data: bytes) -> bool:
    """Whether ``data`` claims to be an extension frame (its header alone is looked at)."""
    return (
        len(data) >= 6
        and data[5] == EXTENSION_FRAME_TYPE
        and data[4] == FRAME_VERSION
        and data[:4] == FRAME_MAGIC
    )


def decode_extension(data: bytes) -> PathNotice:
    """Decode one complete extension frame; raise :class:`DecodeError` if it is
    malformed or of a kind this node does not know."""
    if len(data) < FRAME_HEADER_SIZE + 3 or not is_extension_frame(data):
        raise DecodeError("not an extension frame")
    if data[6] or data[7]:
        raise DecodeError("extension frame with an extra byte or hop limit")
    total = int.from_bytes(data[8:10], "big")
    if total != len(data):
        raise DecodeError(f"frame length field says {total} bytes, got {len(data)}")
    if int.from_bytes(data[10:12], "big") != len(data) - 12:
        raise DecodeError("extension payload length disagrees with the frame length")
    kind = data[12]
    if kind != ExtensionKind.PATH_NOTICE:
        raise DecodeError(f"unknown extension kind {kind}")
    if len(data) < 14 + PUBLIC_KEY_SIZE + 1:
        raise DecodeError("path notice truncated")
    direction = data[13]
    if direction not in (Direction.TOWARDS_ORIGIN, Direction.TOWARDS_END):
        raise DecodeError(f"unknown path notice direction {direction}")
    origin = PublicKey(data[14 : 14 + PUBLIC_KEY_SIZE])
    sequence, end = decode_varu64(data, 14 + PUBLIC_KEY_SIZE)
    if end != len(data):
        raise DecodeError("path notice has trailing bytes")
    return PathNotice(Direction(direction), origin, sequence)
