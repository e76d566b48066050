"""QUIC peerings (``quic://``), this project's own, between Pinewood nodes.

One QUIC connection per peering, TLS 1.3 inside with the same certificate form
as the TLS peerings (made from the node's ed25519 key) and an ALPN of our own;
one bidirectional stream, opened by the dialler, carries exactly what a TCP
peering carries (the Pinecone handshake, then frames), handed to the same
:class:`~router.links.peer.PeerLink` through a transport adapter.  The dialler
checks that the server's certificate names the key the inner handshake proves.

The connection is the QUIC engine's business (:mod:`router.quic`: aioquic or
qh3, as the setting ``quic_engine`` chooses, driven the same way); this module
only joins its stream to a link.  The engine buffers whatever is written to a
stream; the stream's unsent bytes reach the link as
``pause_writing``/``resume_writing`` so the link's bounded queues, not the
engine, hold what cannot be sent yet.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from router.links.adapter import CarrierTransport
from router.links.peer import PeerLink
from router.links.tls import certificate_pem
from router.quic.engines import PeeringCredentials, PeeringEngine, PeeringListener, dial, listen
from router.quic.peering import PeeringConnection, PeeringHandler
from router.wire.keys import Identity

if TYPE_CHECKING:
    from router.links.owner import LinkOwner

ALPN = "pinewood-peering-quic/1"
IDLE_TIMEOUT_S = 10.0
FIRST_CLIENT_STREAM = 0
"""The first bidirectional stream a client opens (RFC 9000, section 2.1): the peering's."""


def credentials(identity: Identity) -> PeeringCredentials:
    cert_pem, key_pem = certificate_pem(identity, datetime.datetime.now(datetime.UTC))
    return PeeringCredentials(cert_pem, key_pem, alpn=ALPN, idle_timeout=IDLE_TIMEOUT_S)


class QuicStreamTransport(CarrierTransport):
    """Enough of an asyncio transport for :class:`PeerLink` over one QUIC stream,
    and the handler of that stream's connection."""

    def __init__(self, connection: PeeringConnection, stream_id: int, link: PeerLink) -> None:
        super().__init__(link)
        self.connection = connection
        self.stream_id = stream_id
        self.peer_link = link
        connection.attach(self)

    # ------------------------------------------------------------ the link's calls

    def peername(self) -> Any:
        return self.connection.peer_address

    def rtt_s(self) -> float | None:
        return self.connection.rtt_s()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing:
            return
        self.connection.send(self.stream_id, data)
        self.note_unsent(self.connection.unsent(self.stream_id))

    def pause_reading(self) -> None:
        """QUIC's own flow control holds the sender back once we stop consuming;
        the engine hands us data as it arrives, so there is nothing to pause here."""

    def resume_reading(self) -> None:
        pass

    def abort(self) -> None:
        if not self._closing:
            self._closing = True
            self.connection.shut()
            # The engine reports the end only after its draining period; the link is over now.
            self.connection.loop.call_soon(self.connection.ended, "closed")

    # ------------------------------------------------------------ the connection's calls

    def handshake_completed(self) -> None:
        self.peer_link.certificate_key = self.connection.peer_key()

    def stream_data(self, stream_id: int, data: bytes, end: bool) -> None:
        if self._closing or self.peer_link.closed:
            return  # the link is over (refused, say): what the packet still brought is not its
        if stream_id == self.stream_id and data:
            self.peer_link.data_received(data)
        if end:
            self.connection.shut()

    def transmitted(self) -> None:
        # Acknowledgements free the stream's buffer but raise no event.
        self.note_unsent(self.connection.unsent(self.stream_id))

    def ended(self, reason: str) -> None:
        link = self.peer_link
        if not link.closed:
            link.close_reason = reason
        link.connection_lost(None)


def _attach(
    connection: PeeringConnection,
    stream_id: int,
    node: LinkOwner,
    outbound: str | None,
    expected: bytes | None,
) -> PeerLink:
    link = PeerLink(node, outbound, scheme="quic", expected_key=expected)
    transport = QuicStreamTransport(connection, stream_id, link)
    link.connection_made(transport)
    return link


async def serve(engine: PeeringEngine, node: LinkOwner, host: str, port: int) -> PeeringListener:
    """Accept QUIC peerings on ``host:port``: a connection becomes a peering when
    the dialler's stream brings its first bytes (any other stream is ignored)."""

    def accept(connection: PeeringConnection, stream_id: int) -> PeeringHandler | None:
        if stream_id != FIRST_CLIENT_STREAM:
            return None
        link = _attach(connection, stream_id, node, None, None)
        link.certificate_key = connection.peer_key()
        assert connection.handler is not None
        return connection.handler

    return await listen(engine, host, port, credentials(node.identity), accept)


async def dial_peer(
    engine: PeeringEngine,
    node: LinkOwner,
    host: str,
    port: int,
    outbound: str,
    timeout: float,
    expected_key: bytes | None = None,
) -> PeerLink:
    """Open a QUIC peering to ``host:port``; returns its link, the Pinecone handshake pending."""
    connection = await dial(engine, host, port, credentials(node.identity), timeout)
    link = _attach(connection, connection.next_stream_id(), node, outbound, expected_key)
    link.certificate_key = connection.peer_key()
    link.lost.add_done_callback(lambda _: connection.close_socket())
    return link
