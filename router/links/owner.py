"""What a peering link needs from the runtime that owns it.

A link reads bytes, checks the peer's handshake and cuts frames; every decision
(whether to let a handshake in, what a peering's frames mean, what to do when
it ends) belongs to its owner, the node.  This protocol is all a link sees of
it, so the links do not depend on the daemon above them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from router.links.queues import CODEL_TARGET_S
from router.wire.keys import Identity, PublicKey

if TYPE_CHECKING:
    from router.links.peer import PeerLink


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """The settings every link of a node shares."""

    handshake_timeout: float
    """Seconds for the peer's handshake to arrive and verify."""
    traffic_queue_frames: int
    """Traffic frames queued for one peer from one source before the oldest is dropped."""
    receive_buffer: int = 0
    """The kernel's receive buffer for a stream peering in bytes; 0 leaves it to the kernel."""
    queue_target_s: float = CODEL_TARGET_S
    """The wait in a peer's queue past which a source standing above it loses frames."""
    send_buffer: int = 0
    """Where a stream peering's kernel send buffer starts, and its least size
    as it follows the path, in bytes; 0 leaves it to the kernel."""


class LinkOwner(Protocol):
    """The node, as its links see it."""

    @property
    def identity(self) -> Identity: ...

    @property
    def handshake_bytes(self) -> bytes: ...

    @property
    def link_settings(self) -> LinkSettings: ...

    @property
    def control_bytes_out(self) -> Counter[int]:
        """Bytes of protocol frames written to every peering, by frame type
        (the header's type byte): what the node costs its links at rest."""

    def admit_handshake(self, link: PeerLink) -> bool:
        """Whether a new connection may go on to its handshake (before any cryptography)."""

    def key_admissible(self, link: PeerLink, key: PublicKey) -> bool:
        """Whether a handshake claiming ``key`` is worth verifying."""

    def link_established(self, link: PeerLink) -> bool:
        """The handshake verified: whether the link becomes a peering."""

    def frames_received(self, link: PeerLink, frames: list[bytes]) -> None:
        """Whole frames from a peering, in order."""

    def link_lost(self, link: PeerLink) -> None:
        """The link is gone, for whatever reason."""

    def link_writable(self, link: PeerLink) -> None:
        """The link's queues have drained: sources paused for it may go on."""
