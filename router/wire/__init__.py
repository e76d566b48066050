"""The Pinecone v1 wire codec: sans-I/O, strict, byte-exact with the reference.

Nothing here touches a socket, a clock or global state.  Decoders raise
:class:`DecodeError` (a :class:`ValueError`) on anything malformed and never
anything else; encoders raise :class:`EncodeError` for values the wire cannot
carry.
"""

from router.wire.announcement import (
    AnnouncementHop,
    RootAnnouncement,
    decode_announcement,
    encode_announcement,
)
from router.wire.broadcast import WakeupBroadcastBody, decode_wakeup, encode_wakeup, sign_wakeup
from router.wire.coordinates import (
    Coordinates,
    common_prefix_length,
    decode_coordinate_ports,
    decode_coordinates,
    encode_coordinates,
    tree_distance,
)
from router.wire.errors import DecodeError, EncodeError, SignatureError, WireError
from router.wire.fastpath import TrafficRoute, rewrite_traffic, traffic_route
from router.wire.frames import (
    FRAME_HEADER_SIZE,
    MAX_FRAME_SIZE,
    MAX_HOP_LIMIT,
    BootstrapFrame,
    Frame,
    FrameType,
    Keepalive,
    TrafficFrame,
    TreeAnnouncementFrame,
    WakeupBroadcastFrame,
    check_header,
    decode_frame,
    encode_frame,
)
from router.wire.handshake import (
    HANDSHAKE_CAPABILITIES,
    HANDSHAKE_SIZE,
    HANDSHAKE_VERSION,
    Handshake,
    build_handshake,
    parse_handshake,
)
from router.wire.keys import (
    FULL_MASK,
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    Identity,
    PublicKey,
    dht_ordered,
    key_from_hex,
    public_key,
    verify_signature,
)
from router.wire.snake import (
    FULL_WATERMARK,
    BootstrapBody,
    SignedRootStamp,
    Watermark,
    decode_bootstrap,
    encode_bootstrap,
    sign_bootstrap,
    worse_than,
)
from router.wire.varu64 import decode_varu64, encode_varu64, varu64_length

__all__ = [
    "FRAME_HEADER_SIZE",
    "FULL_MASK",
    "FULL_WATERMARK",
    "HANDSHAKE_CAPABILITIES",
    "HANDSHAKE_SIZE",
    "HANDSHAKE_VERSION",
    "MAX_FRAME_SIZE",
    "MAX_HOP_LIMIT",
    "PUBLIC_KEY_SIZE",
    "SIGNATURE_SIZE",
    "AnnouncementHop",
    "BootstrapBody",
    "BootstrapFrame",
    "Coordinates",
    "DecodeError",
    "EncodeError",
    "Frame",
    "FrameType",
    "Handshake",
    "Identity",
    "Keepalive",
    "PublicKey",
    "RootAnnouncement",
    "SignatureError",
    "SignedRootStamp",
    "TrafficFrame",
    "TrafficRoute",
    "TreeAnnouncementFrame",
    "WakeupBroadcastBody",
    "WakeupBroadcastFrame",
    "Watermark",
    "WireError",
    "build_handshake",
    "check_header",
    "common_prefix_length",
    "decode_announcement",
    "decode_bootstrap",
    "decode_coordinate_ports",
    "decode_coordinates",
    "decode_frame",
    "decode_varu64",
    "decode_wakeup",
    "dht_ordered",
    "encode_announcement",
    "encode_bootstrap",
    "encode_coordinates",
    "encode_frame",
    "encode_varu64",
    "encode_wakeup",
    "key_from_hex",
    "parse_handshake",
    "public_key",
    "rewrite_traffic",
    "sign_bootstrap",
    "sign_wakeup",
    "traffic_route",
    "tree_distance",
    "varu64_length",
    "verify_signature",
    "worse_than",
]
