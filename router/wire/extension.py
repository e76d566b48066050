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

===============  =============================================================
path notice      direction (1: 0 towards the origin, 1 towards the end) | origin
                 key (32) | sequence of the origin's bootstrap (varu64)
neighbours       count (1, at most 64) | count x (u16 length | a root
                 announcement as one of the sender's peers sent it)
neighbours gone  count (1, at most 64) | count x key (32)
path confirmed   origin key (32) | sequence of the origin's bootstrap (varu64)
path moved       origin key (32) | sequence of the origin's bootstrap (varu64)
===============  =============================================================

A path notice tells the next node along a bootstrap path that the path is
broken further on (:mod:`router.routing.repair_state`).  It names the path by
its origin and the bootstrap's sequence, which every node on the path keeps in
its route entry.  It is unsigned: it can only remove a route through its
sender, or ask an origin to send its own (signed) bootstrap again.

*Neighbours* tell a peer the coordinates of the sender's own peers, so that it
can route over two hops of the tree (:mod:`router.routing.lookahead_state`).
Each is the root announcement that neighbour sent the sender, whose hops are
signed by the neighbour and its ancestors: a node can only pass on
coordinates that were signed for it.  *Neighbours gone* withdraws them by key.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag

from router.wire.errors import DecodeError, EncodeError
from router.wire.frames import FRAME_HEADER_SIZE, FRAME_MAGIC, FRAME_VERSION, MAX_FRAME_SIZE, FrameType
from router.wire.keys import PUBLIC_KEY_SIZE, PublicKey
from router.wire.varu64 import decode_varu64, encode_varu64

EXTENSION_FRAME_TYPE = 0x20
"""The frame type of every extension frame (the reference's types end at 4)."""


def frame_type_name(kind: int) -> str:
    """The name of a frame type byte, as counters and the operator's view show it."""
    if kind == EXTENSION_FRAME_TYPE:
        return "extension"
    if kind in FrameType._value2member_map_:
        return FrameType(kind).name.lower()
    return f"type {kind}"


EXTENSION_BITS = 24
"""Handshake bytes 1-3."""


class Extension(IntFlag):
    """The extensions a node announces in its handshake."""

    NONE = 0
    PATH_REPAIR = 1
    """Path notices: a broken bootstrap path is reported to the nodes along it."""
    LOOKAHEAD = 2
    """Neighbours: tree routing over the coordinates of peers' peers too."""
    ONE_PEERING = 4
    """Of two peerings dialled at once from both ends, the one the lower key dialled stays."""
    QUIET_PATHS = 8
    """Path confirmations: a bootstrap path that is Pinewood's end to end is refreshed less often."""


EXTENSION_NAMES: dict[str, Extension] = {
    "path-repair": Extension.PATH_REPAIR,
    "lookahead": Extension.LOOKAHEAD,
    "one-peering": Extension.ONE_PEERING,
    "quiet-paths": Extension.QUIET_PATHS,
}
"""How settings and the simulator name each extension."""
MAX_NEIGHBOURS = 64
"""Neighbours in one frame, and kept from one peer."""


class ExtensionKind(IntEnum):
    PATH_NOTICE = 1
    NEIGHBOURS = 2
    NEIGHBOURS_GONE = 3
    PATH_CONFIRMED = 4
    PATH_MOVED = 5


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


@dataclass(frozen=True, slots=True)
class PathConfirmed:
    origin: PublicKey
    sequence: int


@dataclass(frozen=True, slots=True)
class PathMoved:
    origin: PublicKey
    sequence: int


@dataclass(frozen=True, slots=True)
class Neighbours:
    announcements: tuple[bytes, ...]
    """Each the raw root announcement one of the sender's peers sent it (unverified)."""


@dataclass(frozen=True, slots=True)
class NeighboursGone:
    keys: tuple[PublicKey, ...]


ExtensionMessage = PathNotice | Neighbours | NeighboursGone | PathConfirmed | PathMoved


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
    return _frame(payload)


def encode_path_word(message: PathConfirmed | PathMoved) -> bytes:
    """A path confirmation or a path moved word: the same body, another kind."""
    if len(message.origin) != PUBLIC_KEY_SIZE:
        raise EncodeError(f"origin key must be {PUBLIC_KEY_SIZE} bytes, got {len(message.origin)}")
    kind = ExtensionKind.PATH_CONFIRMED if isinstance(message, PathConfirmed) else ExtensionKind.PATH_MOVED
    return _frame(bytes((kind,)) + bytes(message.origin) + encode_varu64(message.sequence))


def encode_neighbours(message: Neighbours) -> bytes:
    """The frame; :class:`EncodeError` if it holds too many or does not fit one frame."""
    if len(message.announcements) > MAX_NEIGHBOURS:
        raise EncodeError(f"at most {MAX_NEIGHBOURS} neighbours in one frame")
    parts = [bytes((ExtensionKind.NEIGHBOURS, len(message.announcements)))]
    for raw in message.announcements:
        if len(raw) > 0xFFFF:
            raise EncodeError("an announcement does not fit a u16 length")
        parts.append(len(raw).to_bytes(2, "big") + raw)
    return _frame(b"".join(parts))


def encode_neighbours_gone(message: NeighboursGone) -> bytes:
    if len(message.keys) > MAX_NEIGHBOURS:
        raise EncodeError(f"at most {MAX_NEIGHBOURS} neighbours in one frame")
    if any(len(key) != PUBLIC_KEY_SIZE for key in message.keys):
        raise EncodeError(f"keys must be {PUBLIC_KEY_SIZE} bytes")
    return _frame(bytes((ExtensionKind.NEIGHBOURS_GONE, len(message.keys))) + b"".join(message.keys))


def encode_extension(message: ExtensionMessage) -> bytes:
    if isinstance(message, PathNotice):
        return encode_path_notice(message)
    if isinstance(message, Neighbours):
        return encode_neighbours(message)
    if isinstance(message, (PathConfirmed, PathMoved)):
        return encode_path_word(message)
    return encode_neighbours_gone(message)


NEIGHBOURS_ROOM = MAX_FRAME_SIZE - FRAME_HEADER_SIZE - 2 - 2
"""Bytes of (length, announcement) pairs one neighbours frame can hold."""


def _frame(payload: bytes) -> bytes:
    total = FRAME_HEADER_SIZE + 2 + len(payload)
    if total > MAX_FRAME_SIZE:
        raise EncodeError(f"extension frame of {total} bytes exceeds the {MAX_FRAME_SIZE}-byte maximum")
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


def decode_extension(data: bytes) -> ExtensionMessage:
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
    if kind == ExtensionKind.NEIGHBOURS:
        return _decode_neighbours(data)
    if kind == ExtensionKind.NEIGHBOURS_GONE:
        return _decode_gone(data)
    if kind in (ExtensionKind.PATH_CONFIRMED, ExtensionKind.PATH_MOVED):
        return _decode_confirmed(data)
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


def _decode_confirmed(data: bytes) -> PathConfirmed | PathMoved:
    if len(data) < 13 + PUBLIC_KEY_SIZE + 1:
        raise DecodeError("path confirmation truncated")
    origin = PublicKey(data[13 : 13 + PUBLIC_KEY_SIZE])
    sequence, end = decode_varu64(data, 13 + PUBLIC_KEY_SIZE)
    if end != len(data):
        raise DecodeError("path confirmation has trailing bytes")
    if data[12] == ExtensionKind.PATH_MOVED:
        return PathMoved(origin, sequence)
    return PathConfirmed(origin, sequence)


def _decode_neighbours(data: bytes) -> Neighbours:
    count = data[13]
    if count > MAX_NEIGHBOURS:
        raise DecodeError(f"more than {MAX_NEIGHBOURS} neighbours")
    at, out = 14, []
    for _ in range(count):
        if at + 2 > len(data):
            raise DecodeError("neighbours truncated")
        length = int.from_bytes(data[at : at + 2], "big")
        end = at + 2 + length
        if end > len(data):
            raise DecodeError("neighbours truncated")
        out.append(data[at + 2 : end])
        at = end
    if at != len(data):
        raise DecodeError("neighbours frame has trailing bytes")
    return Neighbours(tuple(out))


def _decode_gone(data: bytes) -> NeighboursGone:
    count = data[13]
    if count > MAX_NEIGHBOURS:
        raise DecodeError(f"more than {MAX_NEIGHBOURS} neighbours")
    if len(data) != 14 + count * PUBLIC_KEY_SIZE:
        raise DecodeError("neighbours gone frame has the wrong length")
    size = PUBLIC_KEY_SIZE
    return NeighboursGone(tuple(PublicKey(data[14 + i * size : 14 + (i + 1) * size]) for i in range(count)))
