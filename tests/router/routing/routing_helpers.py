"""Helpers for routing tests: keys shaped like the reference tests' and announcement records."""

from __future__ import annotations

from router.routing.tree import PeerAnnouncement, Root
from router.wire import Identity, PublicKey, RootAnnouncement
from tests.router.wire.keys import identity


def K(n: int) -> PublicKey:
    """A key whose first byte is ``n`` and the rest zero (the reference tests' ``PublicKey{n}``)."""
    return PublicKey(bytes([n]) + bytes(31))


ZERO = PublicKey(bytes(32))


def announcement(
    root: Root,
    ports: tuple[int, ...] = (),
    signers: tuple[PublicKey, ...] | None = None,
    *,
    order: int = 1,
    received_at: float = 0.0,
) -> PeerAnnouncement:
    """A stored announcement with the given root, hop ports and signers (unsigned)."""
    signer_keys = signers if signers is not None else tuple(ZERO for _ in ports)
    return PeerAnnouncement(
        RootAnnouncement.create(root[0], root[1]),
        received_at,
        order,
        root,
        signer_keys,
        ports[:-1],
    )


T0 = 1000.0
"""The start time of core tests' fake clock."""


def ordered_identities() -> list[Identity]:
    """Eight identities sorted by public key, so tests can pick a low, middle and high key."""
    return sorted((identity(n) for n in range(1, 9)), key=lambda i: i.public_key)


LOW, MID, HIGH = ordered_identities()[0], ordered_identities()[3], ordered_identities()[7]
