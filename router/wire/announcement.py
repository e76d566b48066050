"""Root announcements: the signed messages that build the spanning tree.

``root key (32) | root sequence (varu64) | hop*`` where each hop is
``port (varu64) | signer key (32) | ed25519 signature (64)`` and the signature
covers every byte of the announcement before that hop.  A node repeats its
parent's announcement to each peer with one more hop whose port is that peer's
port number on this node; the ports, in order, are the coordinates of the node
that receives it.  Reference: ``types/announcement.go``, ``types/signaturehop.go``
and ``docs/spanning_tree/``.

A :class:`RootAnnouncement` keeps its exact wire bytes (``raw``): signatures are
over bytes, so extending or forwarding an announcement never re-encodes what
others signed.  Each hop records how many bytes its signature covers, which lets
a router verify only the hops it has not seen before (:meth:`verify_hops`).
Signatures are not copied out of ``raw``: a router holds every peer's
announcement, and a separate bytes object for each 64-byte signature was about a
third of that memory; :meth:`RootAnnouncement.signature` slices it when needed.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.wire.coordinates import Coordinates
from router.wire.errors import DecodeError, EncodeError, SignatureError
from router.wire.keys import (
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    Identity,
    PublicKey,
    verify_signature,
)
from router.wire.varu64 import decode_varu64, encode_varu64

MIN_HOP_SIZE = 1 + PUBLIC_KEY_SIZE + SIGNATURE_SIZE
MAX_ANNOUNCEMENT_SIZE = 0xFFFF


@dataclass(frozen=True, slots=True)
class AnnouncementHop:
    """One signed hop.  ``signed_length`` is how many announcement bytes it signs
    (where the hop starts); its signature is the last 64 bytes before the next hop."""

    port: int
    signer: PublicKey
    signed_length: int


@dataclass(frozen=True, slots=True)
class RootAnnouncement:
    """A parsed root announcement and its exact wire bytes."""

    root_key: PublicKey
    root_sequence: int
    hops: tuple[AnnouncementHop, ...]
    raw: bytes

    @classmethod
    def create(cls, root_key: PublicKey, root_sequence: int) -> RootAnnouncement:
        """A root's own announcement before any hop is signed."""
        if len(root_key) != PUBLIC_KEY_SIZE:
            raise EncodeError("root key must be 32 bytes")
        return cls(root_key, root_sequence, (), bytes(root_key) + encode_varu64(root_sequence))

    @property
    def coordinates(self) -> Coordinates:
        """Coordinates of the node this announcement was sent to."""
        return tuple(h.port for h in self.hops)

    @property
    def sender_coordinates(self) -> Coordinates:
        """Coordinates of the node that sent it (every hop but its own)."""
        return tuple(h.port for h in self.hops[:-1])

    @property
    def sender(self) -> PublicKey | None:
        """The key that signed the last hop, normally the peer it came from."""
        return self.hops[-1].signer if self.hops else None

    @property
    def ancestor_parent(self) -> PublicKey:
        """The sender's parent: the second-last signer, or the root for one hop."""
        if len(self.hops) < 2:
            return self.root_key
        return self.hops[-2].signer

    def with_hop(self, identity: Identity, port: int, *, sign: bool = True) -> RootAnnouncement:
        """This announcement extended by ``identity`` for the peer on ``port``.

        ``sign=False`` leaves the signature zero, as the reference does with
        signatures disabled; only for simulations whose nodes skip verification.
        """
        if not 0 < port <= 0xFFFFFFFFFFFFFFFF:
            raise EncodeError(f"announcement hop port must be 1..2**64-1, got {port}")
        signature = identity.sign(self.raw) if sign else bytes(SIGNATURE_SIZE)
        hop_bytes = encode_varu64(port) + identity.public_key + signature
        raw = self.raw + hop_bytes
        if len(raw) > MAX_ANNOUNCEMENT_SIZE:
            raise EncodeError("announcement too long for a frame")
        hop = AnnouncementHop(port, identity.public_key, len(self.raw))
        return RootAnnouncement(self.root_key, self.root_sequence, (*self.hops, hop), raw)

    def signature(self, index: int) -> bytes:
        """The signature of ``hops[index]``."""
        hops = self.hops
        end = hops[index + 1].signed_length if index + 1 < len(hops) else len(self.raw)
        return self.raw[end - SIGNATURE_SIZE : end]

    def verify_hops(self, start: int = 0) -> None:
        """Check the signatures of ``hops[start:]``; raise :class:`SignatureError`.

        A router that has verified an announcement verifies a longer one with the
        same prefix from the first new hop only.
        """
        raw = self.raw
        for index in range(start, len(self.hops)):
            hop = self.hops[index]
            if not verify_signature(hop.signer, raw[: hop.signed_length], self.signature(index)):
                raise SignatureError(f"announcement signature {index} (port {hop.port}) is invalid")

    def sanity_check(self, sender: bytes) -> None:
        """The reference's structural checks (``SanityCheck``); raise :class:`DecodeError`.

        At least one hop; the first signer is the root; no port 0; the last
        signer is ``sender`` (the peer it arrived from); no signer twice.
        """
        if not self.hops:
            raise DecodeError("announcement has no hops")
        if self.hops[0].signer != self.root_key:
            raise DecodeError("announcement's first signer is not the root")
        if self.hops[-1].signer != sender:
            raise DecodeError("announcement's last signer is not the peer that sent it")
        seen: set[bytes] = set()
        for hop in self.hops:
            if hop.port == 0:
                raise DecodeError("announcement contains port 0")
            if hop.signer in seen:
                raise DecodeError("announcement contains a routing loop")
            seen.add(hop.signer)

    def is_loop_or_child_of(self, key: bytes) -> bool:
        """True if ``key`` signed any hop, or any signer appears twice."""
        seen: set[bytes] = set()
        for hop in self.hops:
            if hop.signer == key or hop.signer in seen:
                return True
            seen.add(hop.signer)
        return False


def decode_announcement(payload: bytes | memoryview, *, verify: bool = True) -> RootAnnouncement:
    """Parse an announcement; with ``verify`` (default) check every signature too."""
    raw = bytes(payload)
    if len(raw) < PUBLIC_KEY_SIZE + 1:
        raise DecodeError(f"announcement truncated: {len(raw)} bytes")
    root_key = PublicKey(raw[:PUBLIC_KEY_SIZE])
    root_sequence, offset = decode_varu64(raw, PUBLIC_KEY_SIZE)
    hops: list[AnnouncementHop] = []
    end = len(raw)
    while offset < end:
        start = offset
        port, offset = decode_varu64(raw, offset)
        if offset + PUBLIC_KEY_SIZE + SIGNATURE_SIZE > end:
            raise DecodeError(f"announcement hop {len(hops)} truncated")
        signer = PublicKey(raw[offset : offset + PUBLIC_KEY_SIZE])
        offset += PUBLIC_KEY_SIZE
        offset += SIGNATURE_SIZE
        hops.append(AnnouncementHop(port, signer, start))
    announcement = RootAnnouncement(root_key, root_sequence, tuple(hops), raw)
    if verify:
        announcement.verify_hops()
    return announcement


def encode_announcement(announcement: RootAnnouncement) -> bytes:
    """Wire bytes of ``announcement`` (its preserved ``raw``)."""
    return announcement.raw
