"""What the routing core asks its runtime to do, and what it tells it happened.

The core never performs I/O: every call returns a list of these records, in
order, and the runtime (or the in-memory mesh) carries them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from router.wire.coordinates import Coordinates
from router.wire.keys import PublicKey


class SendFrame(NamedTuple):
    """Write ``data`` (one complete frame) to the peer on ``port``.

    ``traffic`` frames go to the peer's bounded, fair traffic queue; the rest
    (announcements, bootstraps, broadcasts, keepalives) go ahead of traffic.

    This and :class:`Deliver` are named tuples, not frozen dataclasses like the
    other records: one is built for every forwarded or delivered frame, and a
    frozen dataclass's ``__init__`` costs several times a tuple's.
    """

    port: int
    data: bytes
    traffic: bool = False


class Deliver(NamedTuple):
    """Hand an overlay payload to the local application.

    ``destination_key`` is normally ours; it differs when this node is merely the
    closest key to an absent destination (see docs/protocol.md,
    "Routing"), and the application should check it.
    """

    source_key: PublicKey
    destination_key: PublicKey
    payload: bytes


class CloseCause(Enum):
    """Why the core closed a peering, for the runtime's policy (counters and logs
    take the reason's text)."""

    MALFORMED = "malformed"
    """The peer sent bytes that break the protocol."""
    BAD_SIGNATURE = "bad signature"
    """A frame whose signature fails: only a hostile peer sends or passes one on,
    since every honest node verifies before it installs or forwards."""
    SILENT = "silent"
    """Nothing received within the reference's peer timeout."""


@dataclass(frozen=True, slots=True)
class ClosePeer:
    """The core has already forgotten this peer; close its link.  ``reason`` says why."""

    port: int
    reason: str
    cause: CloseCause = CloseCause.MALFORMED


@dataclass(frozen=True, slots=True)
class ParentChanged:
    port: int | None


@dataclass(frozen=True, slots=True)
class RootChanged:
    root_key: PublicKey
    root_sequence: int
    coordinates: Coordinates


@dataclass(frozen=True, slots=True)
class DescendingChanged:
    key: PublicKey | None


@dataclass(frozen=True, slots=True)
class BroadcastReceived:
    """A valid wakeup broadcast from ``source_key`` was seen for the first time."""

    source_key: PublicKey


Output = SendFrame | Deliver | ClosePeer | ParentChanged | RootChanged | DescendingChanged | BroadcastReceived
