"""The peering handshake that both ends of a new link send at once.

``version (1) | 3 reserved bytes | capabilities (u32 BE) | public key (32) |
ed25519 signature (64) over the 40 bytes before it`` = 104 bytes.  Reference:
``router/router.go`` (the handshake in ``Connect``) and ``router/version.go``.

The reference writes zeros into bytes 1-3 and never reads them; they are
covered by the signature.  A Pinewood node announces its routing extensions
there (:mod:`router.wire.extension`); with none, its handshake is byte for
byte the reference's.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.wire.errors import DecodeError, EncodeError, SignatureError
from router.wire.extension import EXTENSION_BITS
from router.wire.keys import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, Identity, PublicKey, verify_signature

HANDSHAKE_VERSION = 1
# Reference capability bits: lengthened root interval (1), cryptographic setups
# (2), deduplicated coordinate info (8), soft state (16), hybrid routing (32).
HANDSHAKE_CAPABILITIES = 0x0000003B
HANDSHAKE_SIGNED_SIZE = 8 + PUBLIC_KEY_SIZE
HANDSHAKE_SIZE = HANDSHAKE_SIGNED_SIZE + SIGNATURE_SIZE
HANDSHAKE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Handshake:
    """A verified handshake from the other end of a link."""

    version: int
    capabilities: int
    public_key: PublicKey
    signature: bytes
    extensions: int = 0
    """Bytes 1-3, big-endian: the extension bits the peer announces (any value is
    taken; the bits this node does not know are ignored, as the reference ignores all)."""


def build_handshake(identity: Identity, extensions: int = 0) -> bytes:
    """The 104 bytes this node sends first on every new link, announcing the
    ``extensions`` bits in bytes 1-3 (0: the reference's handshake)."""
    if not 0 <= extensions < 1 << EXTENSION_BITS:
        raise EncodeError(f"extensions take {EXTENSION_BITS} bits, got {extensions}")
    head = (
        bytes((HANDSHAKE_VERSION,))
        + extensions.to_bytes(3, "big")
        + HANDSHAKE_CAPABILITIES.to_bytes(4, "big")
        + identity.public_key
    )
    return head + identity.sign(head)


def handshake_key(data: bytes) -> PublicKey:
    """The key a handshake claims, unchecked: for admission decisions that come
    before the signature is worth verifying."""
    return PublicKey(data[8:HANDSHAKE_SIGNED_SIZE])


def parse_handshake(data: bytes | bytearray | memoryview) -> Handshake:
    """Parse and verify a peer's handshake; raise :class:`DecodeError` to refuse it."""
    data = bytes(data)
    if len(data) != HANDSHAKE_SIZE:
        raise DecodeError(f"handshake must be {HANDSHAKE_SIZE} bytes, got {len(data)}")
    version = data[0]
    if version != HANDSHAKE_VERSION:
        raise DecodeError(f"unsupported handshake version {version}")
    capabilities = int.from_bytes(data[4:8], "big")
    if capabilities != HANDSHAKE_CAPABILITIES:
        raise DecodeError(
            f"capabilities 0x{capabilities:08x} differ from ours 0x{HANDSHAKE_CAPABILITIES:08x}"
        )
    key = PublicKey(data[8:HANDSHAKE_SIGNED_SIZE])
    signature = data[HANDSHAKE_SIGNED_SIZE:]
    if not verify_signature(key, data[:HANDSHAKE_SIGNED_SIZE], signature):
        raise SignatureError("handshake signature does not verify")
    return Handshake(version, capabilities, key, signature, int.from_bytes(data[1:4], "big"))
