"""Lookahead: Pinewood's own extension, between Pinewood nodes only.

On peerings whose ends both announced
:attr:`~router.wire.extension.Extension.LOOKAHEAD`, each node tells the other
the coordinates of its own peers, as the root announcements those peers sent
it (signed by each peer and its ancestors), and withdraws them when they go.
The receiver verifies each (through the verified-prefix cache, charged to the
sender's signature budget: usually one new signature, the neighbour's last
hop), keeps the coordinates, and routes frames with coordinates over the two
hops it now sees (:func:`router.routing.lookahead.next_hop_lookahead`).

What is sent is a difference: a neighbour's announcement again only when it
changed, a withdrawal when it went, on the peer tick (``PEER_TICK_S``).  At
most ``MAX_NEIGHBOURS`` neighbours are taken from one peer and
``MAX_CLAIMS`` in all; past that they are dropped and counted.  A peer can
pass on only coordinates that were signed for it, and a claim that fails its
signature closes the peering, as a bad tree announcement does.  Sans-I/O.
"""

from __future__ import annotations

from router.routing.constants import MAX_ANNOUNCEMENT_HOPS, MAX_CLAIMS
from router.routing.lookahead import claim_id, count_claims, pack_claims, unpack_claims
from router.routing.state import LOOKAHEAD_BIT, RoutingState
from router.routing.tree import Root
from router.wire.announcement import decode_announcement
from router.wire.errors import DecodeError
from router.wire.extension import (
    MAX_NEIGHBOURS,
    NEIGHBOURS_ROOM,
    Neighbours,
    NeighboursGone,
    encode_neighbours,
    encode_neighbours_gone,
)
from router.wire.keys import PublicKey
from router.wire.varu64 import encode_varu64


class LookaheadState(RoutingState):
    """Neighbour claims out and in."""

    def _lookahead_peers(self) -> list[int]:
        return [p for p, bits in self.peer_extensions.items() if bits & LOOKAHEAD_BIT]

    def _forget_claims(self, port: int) -> None:
        """The peer on ``port`` is gone: its claims, and what we told it (the
        caller marks the state changed)."""
        self.neighbour_claims.pop(port, None)
        self._claims_told.pop(port, None)

    def _claims_of(self, port: int) -> dict[bytes, bytes]:
        """The claims from the peer on ``port``: :func:`claim_id` -> encoded ports."""
        packed = self.neighbour_claims.get(port)
        return unpack_claims(packed) if packed else {}

    def _store_claims(self, port: int, claims: dict[bytes, bytes]) -> None:
        if claims:
            self.neighbour_claims[port] = pack_claims(claims)
        else:
            self.neighbour_claims.pop(port, None)

    # ------------------------------------------------------------ out

    def _maintain_claims(self, now: float) -> None:
        """Tell each lookahead peer what changed among our other peers since we last did."""
        self._claims_dirty = False
        peers = self._lookahead_peers()
        if not peers:
            return
        # Our peers, by root, shallowest first, one announcement per key.  A peer is
        # told of those under its own root (the one it announced to us): the only
        # claims it keeps, and it hears again of all of them when its root changes.
        by_root: dict[Root, dict[PublicKey, tuple[int, bytes]]] = {}
        for port, ann in self.announcements.items():
            current = by_root.setdefault(ann.root, {})
            key = self.peer_keys[port]
            depth = len(ann.peer_coordinates)
            if key not in current or depth < current[key][0]:
                current[key] = (depth, ann.announcement.raw)
        # The shallowest first, and one more than a peer takes (it is not told of itself).
        ordered = {
            root: [(key, raw) for key, (_, raw) in sorted(found.items(), key=lambda i: (i[1][0], i[0]))][
                : MAX_NEIGHBOURS + 1
            ]
            for root, found in by_root.items()
        }
        # Every peer told under a root was told the same list (less itself), so one
        # list a root is kept, not one a peer: a hub has hundreds of peers.
        previous, told = self._claims_sent, self._claims_told
        for port in peers:
            peer_key = self.peer_keys[port]
            theirs = self.announcements.get(port)
            if theirs is None:
                continue  # its root is not known yet
            wanted = _for_peer(ordered.get(theirs.root, []), peer_key)
            sent = _for_peer(previous.get(theirs.root, []), peer_key) if told.get(port) == theirs.root else {}
            told[port] = theirs.root
            gone = [key for key in sent if key not in wanted]
            changed = [raw for key, raw in wanted.items() if sent.get(key) != raw]
            for start in range(0, len(gone), MAX_NEIGHBOURS):
                frame = encode_neighbours_gone(NeighboursGone(tuple(gone[start : start + MAX_NEIGHBOURS])))
                self.stats["lookahead frames sent"] += 1
                self.send(port, frame, now)
            batch: list[bytes] = []
            room = NEIGHBOURS_ROOM
            for raw in changed:
                if batch and (len(batch) == MAX_NEIGHBOURS or 2 + len(raw) > room):
                    self._send_neighbours(port, batch, now)
                    batch, room = [], NEIGHBOURS_ROOM
                if 2 + len(raw) <= room:
                    batch.append(raw)
                    room -= 2 + len(raw)
            if batch:
                self._send_neighbours(port, batch, now)
        roots = set(told.values())
        self._claims_sent = {root: found for root, found in ordered.items() if root in roots}

    def _send_neighbours(self, port: int, batch: list[bytes], now: float) -> None:
        self.stats["lookahead frames sent"] += 1
        self.send(port, encode_neighbours(Neighbours(tuple(batch))), now)

    # ------------------------------------------------------------ in

    def _handle_neighbours(self, port: int, message: Neighbours, now: float) -> None:
        """Claims from the peer on ``port``.  Raises :class:`DecodeError` or
        :class:`~router.wire.SignatureError` for a claim only the peer could have
        made wrong (the peering is closed)."""
        root = self.root()
        if root != self.claims_root:
            # Claims are kept under one root, ours: those under the last are void
            # (our peers tell us again under the root we now announce to them).
            self.neighbour_claims.clear()
            self.claims_root = root
        claims = self._claims_of(port)
        # Claims held from every other peer (a walk over lengths, no decoding).
        total = sum(count_claims(packed) for p, packed in self.neighbour_claims.items() if p != port)
        changed = False
        for raw in message.announcements:
            ann = decode_announcement(raw, verify=False)
            if not ann.hops:
                raise DecodeError("a neighbour claim without a hop")
            if len(ann.hops) > MAX_ANNOUNCEMENT_HOPS:
                self.drops["lookahead claim too deep"] += 1
                continue
            key = ann.hops[-1].signer
            ident = claim_id(key)
            if key in (self.key, self.peer_keys.get(port)):
                self.drops["lookahead claim of ourselves or the sender"] += 1
                continue
            if (ann.root_key, ann.root_sequence) != root:
                # Only claims under our root are kept (and verified): the sender
                # tells us of those under the root we announce to it.
                if claims.pop(ident, None) is not None:
                    changed = True
                self.drops["lookahead claim for another root"] += 1
                continue
            if ident not in claims and (len(claims) >= MAX_NEIGHBOURS or total + len(claims) >= MAX_CLAIMS):
                self.drops["lookahead claims over the limit"] += 1
                continue
            if key in self.peer_keys.values():
                continue  # our own peer too: we know its coordinates first-hand
            # Checked against the prefixes of our tree, which most of a claim is;
            # the rest is not remembered: claims are seen once, and a hub's many
            # branches would take the room of the tree's own prefixes.
            if self.config.verify_signatures and not self._verified.verify(
                ann, lambda checks: self._afford(port, "lookahead claim", now, checks), remember=False
            ):
                continue
            coordinates = b"".join(encode_varu64(hop.port) for hop in ann.hops[:-1])
            if len(coordinates) > 255:
                self.drops["lookahead claim too deep"] += 1
                continue
            claims[ident] = coordinates
            changed = True
        if changed:
            self._store_claims(port, claims)
            self.stats["lookahead claims taken"] += 1
            self._changed()

    def _handle_neighbours_gone(self, port: int, message: NeighboursGone) -> None:
        claims = self._claims_of(port)
        removed = [claims.pop(ident) for ident in map(claim_id, message.keys) if ident in claims]
        if removed:
            self._store_claims(port, claims)
            self._changed()


def _for_peer(ordered: list[tuple[PublicKey, bytes]], peer_key: bytes) -> dict[PublicKey, bytes]:
    """What a peer is told of ``ordered`` (shallowest first): all but itself, at most
    ``MAX_NEIGHBOURS``."""
    out: dict[PublicKey, bytes] = {}
    for key, raw in ordered:
        if key != peer_key:
            out[key] = raw
            if len(out) == MAX_NEIGHBOURS:
                break
    return out
