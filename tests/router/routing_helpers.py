"""Helpers for routing tests: keys shaped like the reference tests' and announcement records."""

from __future__ import annotations

from router.routing.tree import PeerAnnouncement, Root
from router.wire import PublicKey, RootAnnouncement


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
