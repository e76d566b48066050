"""Sealed envelopes: what a relay keeps for an offline node, and all it sees.

An envelope is sealed to its recipient with an anonymous sealed box (X25519
derived from the recipient's ed25519 node key, an ephemeral sender key,
XSalsa20-Poly1305; libsodium's ``crypto_box_seal`` through PyNaCl).  Inside:
the sender's key, the envelope id, the time it was made, the payload (for
federation, the exact HTTP request) and the sender's ed25519 signature over all
of that *and the recipient's key*, so the recipient learns who sent it and that
it was meant for them, and nobody else learns either.

What a relay sees is the id (random, for de-duplication), an expiry and the
ciphertext, whose length is always one of a few bucket sizes (powers of two
from 1 KiB to :data:`MAX_ENVELOPE_BYTES`): the plaintext is padded (one 0x80
byte, then zeros) before sealing, so the sealed length is exactly the bucket.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import msgpack
from nacl.bindings import (
    crypto_box_seal,
    crypto_box_seal_open,
    crypto_sign_ed25519_pk_to_curve25519,
    crypto_sign_ed25519_sk_to_curve25519,
)
from nacl.exceptions import CryptoError

from relay.errors import RelayError
from router.wire.keys import Identity, verify_signature

MIN_BUCKET = 1024
MAX_ENVELOPE_BYTES = 1 << 20
BUCKETS = tuple(1 << n for n in range(10, 21))
SEAL_OVERHEAD = 48  # ephemeral public key (32) and MAC (16)
ID_BYTES = 16
SIGNATURE_CONTEXT = b"pinewood envelope v1\x00"


class EnvelopeError(RelayError, ValueError):
    """An envelope could not be made, opened or trusted."""


@dataclass(frozen=True, slots=True)
class Opened:
    """An envelope opened by its recipient, its sender's signature checked."""

    sender: bytes
    envelope_id: bytes
    created: int
    payload: bytes


def bucket_for(plaintext_bytes: int) -> int:
    """The sealed size for a plaintext of this many bytes (padding included)."""
    needed = plaintext_bytes + 1 + SEAL_OVERHEAD
    for size in BUCKETS:
        if needed <= size:
            return size
    raise EnvelopeError(f"payload too large for an envelope ({plaintext_bytes} bytes; max about 1 MiB)")


def is_bucket(size: int) -> bool:
    return size in BUCKETS


def new_id() -> bytes:
    return os.urandom(ID_BYTES)


def _signed_part(recipient: bytes, envelope_id: bytes, created: int, payload: bytes) -> bytes:
    return SIGNATURE_CONTEXT + recipient + envelope_id + struct.pack("!Q", created) + payload


def seal(sender: Identity, recipient: bytes, envelope_id: bytes, created: int, payload: bytes) -> bytes:
    """The ciphertext of an envelope from ``sender`` to the node with key ``recipient``."""
    if len(recipient) != 32 or len(envelope_id) != ID_BYTES:
        raise EnvelopeError("recipient key must be 32 bytes and the id 16")
    signature = sender.sign(_signed_part(recipient, envelope_id, created, payload))
    inner = msgpack.packb([bytes(sender.public_key), envelope_id, created, payload, signature])
    size = bucket_for(len(inner))
    padded = inner + b"\x80" + bytes(size - SEAL_OVERHEAD - len(inner) - 1)
    try:
        x25519 = crypto_sign_ed25519_pk_to_curve25519(recipient)
    except (CryptoError, ValueError, TypeError):
        raise EnvelopeError("the recipient key is not a usable ed25519 key") from None
    sealed: bytes = crypto_box_seal(padded, x25519)
    assert len(sealed) == size
    return sealed


def open_envelope(recipient: Identity, envelope_id: bytes, ciphertext: bytes) -> Opened:
    """Open, unpad and check an envelope meant for ``recipient``."""
    if not is_bucket(len(ciphertext)):
        raise EnvelopeError(f"{len(ciphertext)} bytes is not an envelope size")
    public = bytes(recipient.public_key)
    secret = crypto_sign_ed25519_sk_to_curve25519(recipient.seed + public)
    try:
        padded = crypto_box_seal_open(ciphertext, crypto_sign_ed25519_pk_to_curve25519(public), secret)
    except (CryptoError, ValueError, TypeError):
        raise EnvelopeError("cannot open: not sealed to this node, or damaged") from None
    end = padded.rstrip(b"\x00")
    if not end.endswith(b"\x80"):
        raise EnvelopeError("bad padding")
    try:
        fields = msgpack.unpackb(end[:-1], max_bin_len=MAX_ENVELOPE_BYTES, max_array_len=8, max_map_len=0)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise EnvelopeError(f"bad envelope contents: {exc}") from None
    if not (
        isinstance(fields, list)
        and len(fields) == 5
        and isinstance(fields[0], bytes)
        and len(fields[0]) == 32
        and fields[1] == envelope_id
        and isinstance(fields[2], int)
        and 0 <= fields[2] < 1 << 64
        and isinstance(fields[3], bytes)
        and isinstance(fields[4], bytes)
    ):
        raise EnvelopeError("bad envelope contents (or an id that is not the envelope's own)")
    sender, _, created, payload, signature = fields
    if not verify_signature(sender, _signed_part(public, envelope_id, created, payload), signature):
        raise EnvelopeError("the sender's signature does not verify")
    return Opened(sender, envelope_id, created, payload)


def seal_to(recipient: bytes, message: bytes) -> bytes:
    """An anonymous sealed box of ``message`` for the node with key ``recipient``
    (no padding, no signature: used for the hop through an intermediate relay)."""
    try:
        sealed: bytes = crypto_box_seal(message, crypto_sign_ed25519_pk_to_curve25519(recipient))
    except (CryptoError, ValueError, TypeError):
        raise EnvelopeError("the recipient key is not a usable ed25519 key") from None
    return sealed


def open_sealed(recipient: Identity, sealed: bytes) -> bytes:
    public = bytes(recipient.public_key)
    secret = crypto_sign_ed25519_sk_to_curve25519(recipient.seed + public)
    try:
        message: bytes = crypto_box_seal_open(sealed, crypto_sign_ed25519_pk_to_curve25519(public), secret)
    except (CryptoError, ValueError, TypeError):
        raise EnvelopeError("cannot open: not sealed to this node, or damaged") from None
    return message
