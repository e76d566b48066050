"""Public keys, their order, and ed25519 signing and verification.

A node's address is its 32-byte ed25519 public key.  Keys are ordered as unsigned
big-endian byte strings, which is exactly how Python compares ``bytes``; the root
of the spanning tree is the highest key.

Ed25519 goes through PyNaCl (libsodium), not ``cryptography`` (OpenSSL).  Measured
on the 2-core development machine (Python 3.11.7, PyNaCl 1.6.2, cryptography
50.0.2, 200-byte message): verify 54.4 us with PyNaCl against 109.2 us with
cryptography even with the public key object cached; sign 21.0 us against
34.5 us.  Verification is what a router does most (every hop of every root
announcement, every bootstrap), so PyNaCl wins by 2x.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import NewType

from nacl.bindings import crypto_sign, crypto_sign_open, crypto_sign_seed_keypair
from nacl.exceptions import CryptoError

from router.wire.errors import EncodeError

PublicKey = NewType("PublicKey", bytes)
"""A 32-byte ed25519 public key, compared as an unsigned big-endian number."""

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
SEED_SIZE = 32

FULL_MASK = PublicKey(b"\xff" * PUBLIC_KEY_SIZE)
"""The highest possible key: the watermark a frame starts its journey with."""

ZERO_KEY = PublicKey(bytes(PUBLIC_KEY_SIZE))


def public_key(data: bytes) -> PublicKey:
    """Check that ``data`` is 32 bytes and type it as a :data:`PublicKey`."""
    if len(data) != PUBLIC_KEY_SIZE:
        raise EncodeError(f"public key must be {PUBLIC_KEY_SIZE} bytes, got {len(data)}")
    return PublicKey(bytes(data))


def key_from_hex(text: str) -> PublicKey:
    """Parse the 64-character hex form of a key."""
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise EncodeError(f"not a hex public key: {text!r}") from exc
    return public_key(raw)


def dht_ordered(a: bytes, b: bytes, c: bytes) -> bool:
    """True when ``a < b < c`` in key order (the reference's ``util.DHTOrdered``)."""
    return a < b < c


def verify_signature(key: bytes, message: bytes, signature: bytes) -> bool:
    """Check an ed25519 ``signature`` by ``key`` over ``message``; never raises."""
    if len(signature) != SIGNATURE_SIZE or len(key) != PUBLIC_KEY_SIZE:
        return False
    try:
        crypto_sign_open(bytes(signature) + bytes(message), bytes(key))
    except (CryptoError, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class Identity:
    """A node's ed25519 key pair.  ``repr`` never shows the seed."""

    seed: bytes = field(repr=False)
    public_key: PublicKey
    _secret: bytes = field(repr=False, compare=False)

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        if len(seed) != SEED_SIZE:
            raise EncodeError(f"ed25519 seed must be {SEED_SIZE} bytes, got {len(seed)}")
        pk, sk = crypto_sign_seed_keypair(bytes(seed))
        return cls(seed=bytes(seed), public_key=PublicKey(pk), _secret=sk)

    @classmethod
    def generate(cls) -> Identity:
        """A fresh random identity (uses the operating system's CSPRNG)."""
        return cls.from_seed(os.urandom(SEED_SIZE))

    def sign(self, message: bytes) -> bytes:
        """The 64-byte ed25519 signature of ``message`` (deterministic)."""
        return crypto_sign(bytes(message), self._secret)[:SIGNATURE_SIZE]
