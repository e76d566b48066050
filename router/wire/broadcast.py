"""Wakeup broadcast bodies: ``sequence | root key | root sequence | signature``,
signed by the broadcasting node (the frame's source key).  Reference:
``types/broadcast.go``; the body has the same form as a bootstrap's."""

from __future__ import annotations

from dataclasses import dataclass

from router.wire.keys import Identity, PublicKey
from router.wire.snake import SignedRootStamp, decode_stamp_fields


@dataclass(frozen=True, slots=True)
class WakeupBroadcastBody(SignedRootStamp):
    """Payload of a wakeup broadcast frame."""


def sign_wakeup(
    identity: Identity, sequence: int, root_key: bytes, root_sequence: int
) -> WakeupBroadcastBody:
    """A wakeup broadcast body signed by ``identity``."""
    message = SignedRootStamp.protected(sequence, root_key, root_sequence)
    return WakeupBroadcastBody(sequence, PublicKey(bytes(root_key)), root_sequence, identity.sign(message))


def decode_wakeup(payload: bytes | memoryview, signer: bytes | None = None) -> WakeupBroadcastBody:
    """Parse a wakeup broadcast body; if ``signer`` is given, verify it too."""
    body = WakeupBroadcastBody(*decode_stamp_fields(payload, "wakeup broadcast"))
    if signer is not None:
        body.verify(signer)
    return body


def encode_wakeup(body: WakeupBroadcastBody) -> bytes:
    return body.encode()
