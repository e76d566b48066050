"""Virtual snake (SNEK) wire types: watermarks and bootstrap bodies.

Reference: ``types/virtualsnake.go``.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.wire.errors import DecodeError, SignatureError
from router.wire.keys import FULL_MASK, PUBLIC_KEY_SIZE, SIGNATURE_SIZE, Identity, PublicKey, verify_signature
from router.wire.varu64 import decode_varu64, encode_varu64


@dataclass(frozen=True, slots=True)
class Watermark:
    """The lowest key (and its sequence) a SNEK-routed frame has been sent towards.

    A frame starts with the full mask (all 0xff).  Forwarding never moves it to
    a worse watermark, which is what keeps SNEK routing loop-free.
    """

    key: PublicKey
    sequence: int

    def worse_than(self, other: Watermark) -> bool:
        """The reference's ``WorseThan``: a higher key is worse; for the same key,
        a lower *non-zero* sequence is worse (sequence 0 means "any")."""
        if self.key != other.key:
            return self.key > other.key
        return self.sequence != 0 and self.sequence < other.sequence


FULL_WATERMARK = Watermark(FULL_MASK, 0)


def worse_than(a: Watermark, b: Watermark) -> bool:
    """Function form of :meth:`Watermark.worse_than`."""
    return a.worse_than(b)


@dataclass(frozen=True, slots=True)
class SignedRootStamp:
    """``sequence | root key | root sequence | signature``: the body shared by
    bootstraps and wakeup broadcasts, signed by the node that originates it."""

    sequence: int
    root_key: PublicKey
    root_sequence: int
    signature: bytes

    @staticmethod
    def protected(sequence: int, root_key: bytes, root_sequence: int) -> bytes:
        """The bytes the originator signs."""
        return encode_varu64(sequence) + bytes(root_key) + encode_varu64(root_sequence)

    def encode(self) -> bytes:
        return self.protected(self.sequence, self.root_key, self.root_sequence) + self.signature

    def verify(self, signer: bytes) -> None:
        """Raise :class:`SignatureError` unless ``signer`` made the signature."""
        message = self.protected(self.sequence, self.root_key, self.root_sequence)
        if not verify_signature(signer, message, self.signature):
            raise SignatureError("signature over sequence and root does not verify")


@dataclass(frozen=True, slots=True)
class BootstrapBody(SignedRootStamp):
    """Payload of a bootstrap frame; the signer is the frame's destination key.

    The reference's sequence is the originator's Unix time in milliseconds."""


def decode_stamp_fields(payload: bytes | memoryview, what: str) -> tuple[int, PublicKey, int, bytes]:
    data = bytes(payload)
    sequence, offset = decode_varu64(data, 0)
    if offset + PUBLIC_KEY_SIZE > len(data):
        raise DecodeError(f"{what} truncated in root key")
    root_key = PublicKey(data[offset : offset + PUBLIC_KEY_SIZE])
    root_sequence, offset = decode_varu64(data, offset + PUBLIC_KEY_SIZE)
    if len(data) - offset != SIGNATURE_SIZE:
        raise DecodeError(
            f"{what} must end with a {SIGNATURE_SIZE}-byte signature, has {len(data) - offset} bytes"
        )
    return sequence, root_key, root_sequence, data[offset:]


def sign_bootstrap(identity: Identity, sequence: int, root_key: bytes, root_sequence: int) -> BootstrapBody:
    """A bootstrap body signed by ``identity``."""
    message = SignedRootStamp.protected(sequence, root_key, root_sequence)
    return BootstrapBody(sequence, PublicKey(bytes(root_key)), root_sequence, identity.sign(message))


def decode_bootstrap(payload: bytes | memoryview, signer: bytes | None = None) -> BootstrapBody:
    """Parse a bootstrap body; if ``signer`` is given, verify its signature too."""
    body = BootstrapBody(*decode_stamp_fields(payload, "bootstrap"))
    if signer is not None:
        body.verify(signer)
    return body


def encode_bootstrap(body: BootstrapBody) -> bytes:
    return body.encode()
