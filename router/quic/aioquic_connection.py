"""A session's QUIC connection on aioquic: :class:`AdjustedConnection`, and
everything else the sessions layer takes of aioquic (the configuration, the
events, the packet types, what it reads of a connection).

The sessions layer imports QUIC from this module alone.  It loads neither the
peering engine (:mod:`router.quic.aioquic_peering`) nor qh3; what it reaches of
aioquic's internals it reaches through :mod:`router.quic.aioquic_hooks`.
"""

from __future__ import annotations

import hashlib
import hmac

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import NetworkAddress, QuicConnection
from aioquic.quic.events import (
    ConnectionIdIssued,
    ConnectionIdRetired,
    ConnectionTerminated,
    HandshakeCompleted,
    PingAcknowledged,
    StreamDataReceived,
    StreamReset,
)
from aioquic.quic.packet import QuicPacketType
from aioquic.tls import CipherSuite

from router.quic.aioquic_hooks import (
    HookedConnection,
    check_aioquic,
    live_stream_ids,
    packet_received_at,
    peer_certificate_key,
    peer_reset_tokens,
    read_header,
    smoothed_rtt_s,
    stream_buffered_bytes,
)

__all__ = [
    "MIN_STATELESS_RESET_BYTES",
    "AdjustedConnection",
    "CipherSuite",
    "ConnectionIdIssued",
    "ConnectionIdRetired",
    "ConnectionTerminated",
    "HandshakeCompleted",
    "PingAcknowledged",
    "QuicConfiguration",
    "QuicPacketType",
    "StreamDataReceived",
    "StreamReset",
    "check_aioquic",
    "is_stateless_reset",
    "live_stream_ids",
    "packet_received_at",
    "peer_certificate_key",
    "read_header",
    "smoothed_rtt_s",
    "stateless_reset_token",
    "stream_buffered_bytes",
]

RESET_TOKEN_BYTES = 16
"""The size of a QUIC stateless reset token (RFC 9000, section 10.3)."""

MIN_STATELESS_RESET_BYTES = 21
"""The smallest stateless reset: a short header's first byte, four or more
unpredictable bytes, and the 16-byte token (RFC 9000, section 10.3)."""


def stateless_reset_token(secret: bytes, cid: bytes) -> bytes:
    """The stateless reset token (RFC 9000, section 10.3.2) that a node whose
    reset secret is ``secret`` gives with the connection ID ``cid``."""
    return hmac.new(secret, cid, hashlib.sha256).digest()[:RESET_TOKEN_BYTES]


def is_stateless_reset(connection: QuicConnection, data: bytes) -> bool:
    """Whether ``data`` is a stateless reset of ``connection``: shaped as a
    short-header packet and ending in a token the other side gave us with one of
    the connection IDs we send to (aioquic does not look for these)."""
    if len(data) < MIN_STATELESS_RESET_BYTES or data[0] & 0xC0 != 0x40:
        return False
    tail = data[-RESET_TOKEN_BYTES:]
    return any(token == tail for token in peer_reset_tokens(connection))


class AdjustedConnection(HookedConnection):
    """aioquic's connection with these changes:

    * its server asks the client for a certificate (aioquic's never does), so the
      side that accepts learns, and can check, the key of whoever dialled it;
    * a stream's receive window follows what the application has consumed
      (:meth:`stream_consumed`), not what has arrived: at most the configured
      ``max_stream_data`` of a stream waits unread, so a reader that stops
      reading stops its peer instead of letting it fill memory;
    * datagrams larger than a path's MTU allows, once the handshake is done and
      the other side has said it takes them (the overlay carries frames of up to
      64 KiB, so a session's packets need not be cut to a UDP path's size):
      :meth:`enlarge_datagrams`;
    * stateless reset tokens derived from a secret of the node's and the
      connection ID (aioquic draws them at random), so that a node that
      restarted can still reset the sessions its previous run held.
    """

    asks_client_certificate = True

    def __init__(
        self,
        *,
        configuration: QuicConfiguration,
        original_destination_connection_id: bytes | None = None,
        reset_secret: bytes | None = None,
    ) -> None:
        super().__init__(
            configuration=configuration,
            original_destination_connection_id=original_destination_connection_id,
        )
        self.stream_window = configuration.max_stream_data
        self.consumed: dict[int, int] = {}
        self._datagram_size_wanted: int | None = None
        self.small_datagram_size = configuration.max_datagram_size
        """The size datagrams start at, and keep to while answering path challenges."""
        self.reset_secret = reset_secret
        self._derive_reset_tokens()

    def _derive_reset_tokens(self) -> None:
        """Replace aioquic's random stateless reset tokens of our connection IDs
        with ones derived from ``reset_secret``; called before any is sent."""
        if self.reset_secret is None:
            return
        for host_cid in self.host_connection_ids:
            if host_cid.stateless_reset_token:  # a client's first ID has none to give
                host_cid.stateless_reset_token = stateless_reset_token(self.reset_secret, host_cid.cid)

    def connection_ids_replenished(self) -> None:
        self._derive_reset_tokens()

    def enlarge_datagrams(self, size: int) -> bool:
        """Send datagrams of up to ``size`` bytes once the handshake is confirmed
        (so that no datagram with an Initial or Handshake packet grows: a client's
        are padded to the full size), if the other side takes them (its
        ``max_udp_payload_size``); whether it will."""
        allowed = self.peer_max_udp_payload
        if size <= self.datagram_size or (allowed is not None and allowed < size):
            return False
        self._datagram_size_wanted = size
        return True

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, NetworkAddress]]:
        if self._datagram_size_wanted is not None and self.handshake_confirmed:
            self.use_datagram_size(self._datagram_size_wanted)
            self._datagram_size_wanted = None
        if self.datagram_size > self.small_datagram_size and self.answering_path_challenge():
            # aioquic pads a datagram that answers a PATH_CHALLENGE to its full
            # size: a 40-byte challenge must not draw 16 KiB back.
            size, self.datagram_size = self.datagram_size, self.small_datagram_size
            try:
                return super().datagrams_to_send(now)
            finally:
                self.datagram_size = size
        return super().datagrams_to_send(now)

    def stream_consumed(self, stream_id: int, count: int) -> None:
        """The application has read ``count`` more bytes of ``stream_id``."""
        self.consumed[stream_id] = self.consumed.get(stream_id, 0) + count

    def stream_forget(self, stream_id: int) -> None:
        self.consumed.pop(stream_id, None)

    def stream_limit(self, stream_id: int, limit: int) -> int:
        """What was consumed plus the window, granted only in steps of half a
        window, as aioquic would."""
        wanted = self.consumed.get(stream_id, 0) + self.stream_window
        return wanted if wanted - limit >= self.stream_window // 2 else limit
