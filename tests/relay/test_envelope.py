"""Sealed envelopes: round trips, padding to buckets, and everything that must fail."""

from __future__ import annotations

import os

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.bindings import crypto_box_seal, crypto_sign_ed25519_pk_to_curve25519

from relay.envelope import (
    BUCKETS,
    MAX_ENVELOPE_BYTES,
    EnvelopeError,
    new_id,
    open_envelope,
    open_sealed,
    seal,
    seal_to,
)
from router.wire.keys import Identity

ALICE, BOB, EVE = Identity.generate(), Identity.generate(), Identity.generate()
BOB_KEY = bytes(BOB.public_key)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=70_000))
def test_round_trip_and_size_is_a_bucket(payload: bytes) -> None:
    envelope_id = new_id()
    sealed = seal(ALICE, BOB_KEY, envelope_id, 1234, payload)
    assert len(sealed) in BUCKETS
    # The smallest bucket that holds it: the next one down would be too small.
    assert len(sealed) == 1024 or len(sealed) // 2 < len(payload) + 200
    opened = open_envelope(BOB, envelope_id, sealed)
    assert (opened.sender, opened.envelope_id, opened.created, opened.payload) == (
        bytes(ALICE.public_key),
        envelope_id,
        1234,
        payload,
    )


def test_sizes_reveal_only_the_bucket() -> None:
    sizes = {len(seal(ALICE, BOB_KEY, new_id(), 0, os.urandom(n))) for n in (0, 10, 500, 800)}
    assert sizes == {1024}
    assert len(seal(ALICE, BOB_KEY, new_id(), 0, os.urandom(5000))) == 8192


def test_too_large_is_refused() -> None:
    with pytest.raises(EnvelopeError, match="too large"):
        seal(ALICE, BOB_KEY, new_id(), 0, bytes(MAX_ENVELOPE_BYTES))


def test_only_the_recipient_can_open() -> None:
    envelope_id = new_id()
    sealed = seal(ALICE, BOB_KEY, envelope_id, 0, b"for bob")
    with pytest.raises(EnvelopeError, match="not sealed to this node"):
        open_envelope(EVE, envelope_id, sealed)


def test_ciphertext_hides_sender_and_payload() -> None:
    payload = b"a very recognisable payload" * 4
    sealed = seal(ALICE, BOB_KEY, new_id(), 0, payload)
    assert bytes(ALICE.public_key) not in sealed and payload[:20] not in sealed


def test_tampering_and_swapped_ids_fail() -> None:
    envelope_id = new_id()
    sealed = bytearray(seal(ALICE, BOB_KEY, envelope_id, 0, b"x"))
    with pytest.raises(EnvelopeError):
        open_envelope(BOB, new_id(), bytes(sealed))  # the relay swapped the id
    sealed[100] ^= 1
    with pytest.raises(EnvelopeError):
        open_envelope(BOB, envelope_id, bytes(sealed))
    with pytest.raises(EnvelopeError, match="not an envelope size"):
        open_envelope(BOB, envelope_id, bytes(sealed[:-1]))


def test_signature_binds_the_recipient() -> None:
    """A recipient cannot pass an envelope on as if it had been meant for someone else:
    the signature covers the recipient's key, so re-sealing the inner message to
    another node fails the check there."""
    envelope_id = new_id()
    signature = ALICE.sign(b"pinewood envelope v1\x00" + BOB_KEY + envelope_id + bytes(8) + b"hi")
    inner = msgpack.packb([bytes(ALICE.public_key), envelope_id, 0, b"hi", signature])
    padded = inner + b"\x80" + bytes(1024 - 48 - len(inner) - 1)
    to_eve = crypto_box_seal(padded, crypto_sign_ed25519_pk_to_curve25519(bytes(EVE.public_key)))
    with pytest.raises(EnvelopeError, match="signature"):
        open_envelope(EVE, envelope_id, to_eve)
    to_bob = crypto_box_seal(padded, crypto_sign_ed25519_pk_to_curve25519(BOB_KEY))
    assert open_envelope(BOB, envelope_id, to_bob).payload == b"hi"


def test_sealed_hop_round_trip() -> None:
    sealed = seal_to(BOB_KEY, b"deposit for the next relay")
    assert open_sealed(BOB, sealed) == b"deposit for the next relay"
    with pytest.raises(EnvelopeError):
        open_sealed(EVE, sealed)
