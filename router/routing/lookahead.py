"""Tree routing over two hops: the next-hop decision of the lookahead extension,
as a pure function (the state that feeds it is :mod:`router.routing.lookahead_state`).

The reference routes a frame with coordinates greedily: to the peer whose own
coordinates are closest to the destination in the tree, if closer than we are.
With lookahead a node also knows the coordinates of its lookahead peers' peers,
and values each peer ``p`` as ``min(d(p), d(q) + 1 for every q next to p)``,
where ``d`` is the tree distance to the destination.  On graph-250 that took the
established frames' stretch from 1.56 to 1.24 (docs/routing-research.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from router.wire.coordinates import Coordinates, common_prefix_length


def tree_distance_to(coordinates: Coordinates, destination: Coordinates, depth: int) -> int:
    """Tree hops from ``coordinates`` to a destination of ``depth`` ports, of which
    ``destination`` holds at least the first ``len(coordinates) + 1``."""
    return len(coordinates) + depth - 2 * common_prefix_length(coordinates, destination)


def next_hop_lookahead(
    destination: Coordinates,
    depth: int,
    our_coordinates: Coordinates,
    from_port: int,
    peer_coordinates: Mapping[int, Coordinates],
    neighbour_coordinates: Mapping[int, Sequence[Coordinates]],
    rank: Mapping[int, tuple[int, int]],
) -> int | None:
    """The peer of least value, if that value is below our own distance; else None.

    Only ``neighbour_coordinates`` of peers that sent them count: those peers run
    this same rule.  The value of the chosen option falls by at least one at
    every hop (the peer next to ``q`` has ``q`` itself as an option), and a peer
    that routes greedily does so from a distance below ours, so the path is
    loop-free.  Ties go to the lower ``rank`` (link type, then announcement order).
    """
    best_port: int | None = None
    best_value = tree_distance_to(our_coordinates, destination, depth)
    best_rank = (0, 0)
    for port, coordinates in peer_coordinates.items():
        if port == from_port:
            continue
        value = tree_distance_to(coordinates, destination, depth)
        for other in neighbour_coordinates.get(port, ()):
            candidate = tree_distance_to(other, destination, depth) + 1
            value = min(value, candidate)
        port_rank = rank.get(port, (0, 0))
        if value < best_value or (best_port is not None and value == best_value and port_rank < best_rank):
            best_port, best_value, best_rank = port, value, port_rank
    return best_port


CLAIM_ID_LENGTH = 8
"""A claim is held under the first bytes of the neighbour's key, not the whole key:
the key only tells one peer's claims (at most ``MAX_NEIGHBOURS``) apart, for
updates and withdrawals, and a peer that made two of its claims collide would
only lose one of its own.  It saves three quarters of the key's room."""


def claim_id(key: bytes) -> bytes:
    """What a neighbour's claim is held under."""
    return key[:CLAIM_ID_LENGTH]


def pack_claims(claims: Mapping[bytes, bytes]) -> bytes:
    """Claims as one bytes object: for each, ``id (8) | length (1) | coordinates``
    (the ports as varu64s); ``claims`` maps :func:`claim_id` to encoded ports."""
    return b"".join(ident + bytes((len(ports),)) + ports for ident, ports in claims.items())


def unpack_claims(packed: bytes) -> dict[bytes, bytes]:
    """The claims :func:`pack_claims` packed: claim id -> encoded ports."""
    out: dict[bytes, bytes] = {}
    at = 0
    while at < len(packed):
        length = packed[at + CLAIM_ID_LENGTH]
        start = at + CLAIM_ID_LENGTH + 1
        out[packed[at : at + CLAIM_ID_LENGTH]] = packed[start : start + length]
        at = start + length
    return out


def count_claims(packed: bytes) -> int:
    """How many claims :func:`pack_claims` packed."""
    count = at = 0
    while at < len(packed):
        at += CLAIM_ID_LENGTH + 1 + packed[at + CLAIM_ID_LENGTH]
        count += 1
    return count
