"""QUIC peerings (``quic://``), this project's own, between Pinewood nodes.

One QUIC connection per peering, TLS 1.3 inside with the same certificate form
as the TLS peerings (made from the node's ed25519 key) and an ALPN of our own;
one bidirectional stream, opened by the dialler, carries exactly what a TCP
peering carries (the Pinecone handshake, then frames), handed to the same
:class:`~router.links.tcp.PeerLink` through a transport adapter.  The dialler
checks that the server's certificate names the key the inner handshake proves.

aioquic buffers whatever is written to a stream; the adapter reports the
stream's unsent bytes to the link as ``pause_writing``/``resume_writing`` so the
link's bounded queues, not aioquic, hold what cannot be sent yet.

aioquic's connection is sans-I/O; how it is driven decides the throughput:

* one transmit per turn of the event loop, after every datagram received in that
  turn and every write made in it, not one per datagram and per write;
* the time given to aioquic comes from a fine clock, not the loop's: uvloop's
  clock moves in milliseconds, and aioquic's pacer, which refills its budget by
  the time passed between calls, then gets nothing back within a millisecond and
  wakes its timer over and over for nothing;
* the timer is re-armed only when aioquic wants waking earlier than it is armed
  for; waking early is harmless (nothing is due, the timer is armed again).

The dialler waits for the handshake on a future of its own, created before the
first Initial goes out.  aioquic's ``wait_connected`` notes a completed
handshake only if somebody is already waiting for it, so a handshake that
completes in the loop turn between sending the Initial and starting to wait (on a
busy machine, the server's reply is read in that same turn) was never seen and
the dial timed out.
"""

from __future__ import annotations

import asyncio
import math
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any, cast

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted, QuicEvent, StreamDataReceived

from router.links.adapter import CarrierTransport
from router.links.tcp import PeerLink
from router.links.tls import node_credentials
from router.quic.engine import (
    peer_certificate_key,
    process_events,
    smoothed_rtt_s,
    stream_buffered_bytes,
)
from router.wire.keys import Identity

if TYPE_CHECKING:
    from router.links.owner import LinkOwner

ALPN = "pinewood-peering-quic/1"
IDLE_TIMEOUT_S = 10.0
clock = time.monotonic
"""The time given to aioquic, in seconds (finer than uvloop's millisecond loop clock)."""


def configuration(identity: Identity, *, client: bool) -> QuicConfiguration:
    config = QuicConfiguration(
        is_client=client,
        alpn_protocols=[ALPN],
        idle_timeout=IDLE_TIMEOUT_S,
        verify_mode=ssl.CERT_NONE,  # no authorities: the key is checked by hand
    )
    config.certificate, config.private_key = node_credentials(identity)
    return config


class QuicStreamTransport(CarrierTransport):
    """Enough of an asyncio transport for :class:`PeerLink` over one QUIC stream."""

    def __init__(self, connection: QuicPeerProtocol, stream_id: int, link: PeerLink) -> None:
        super().__init__(link)
        self.connection = connection
        self.stream_id = stream_id

    def peername(self) -> Any:
        return self.connection.peer_address

    def rtt_s(self) -> float | None:
        return smoothed_rtt_s(self.connection.quic)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing:
            return
        self.connection.quic.send_stream_data(self.stream_id, bytes(data))
        self.connection.transmit_soon()
        self.check_writable()

    def unsent(self) -> int:
        return stream_buffered_bytes(self.connection.quic, self.stream_id)

    def check_writable(self) -> None:
        self.note_unsent(self.unsent())

    def pause_reading(self) -> None:
        """QUIC's own flow control holds the sender back once we stop consuming;
        aioquic hands us data as it arrives, so there is nothing to pause here."""

    def resume_reading(self) -> None:
        pass

    def abort(self) -> None:
        if not self._closing:
            self._closing = True
            self.connection.close()
            # aioquic reports the end only after its draining period; the link is over now.
            asyncio.get_running_loop().call_soon(self.connection.connection_ended, "closed")


class QuicPeerProtocol(QuicConnectionProtocol):
    """A QUIC connection that carries one peering.

    It keeps its own references to the connection, the loop and the UDP
    transport rather than reading the ones aioquic's protocol keeps privately."""

    def __init__(self, quic: QuicConnection, node: LinkOwner, outbound: str | None, **_: Any) -> None:
        super().__init__(quic)
        self.quic = quic
        self.loop = asyncio.get_running_loop()
        self.udp: asyncio.DatagramTransport | None = None
        self.node = node
        self.outbound = outbound
        self.stream: QuicStreamTransport | None = None
        self.peer_address: tuple[str, int] | None = None
        self.link: PeerLink | None = None
        self.expected_key: bytes | None = None
        self._lost = False
        self._transmit_pending = False
        self._wake: asyncio.TimerHandle | None = None
        self._wake_at = math.inf
        self.handshake: asyncio.Future[None] = self.loop.create_future()
        # Only the dialler awaits this; an unawaited failure is not an error to report.
        self.handshake.add_done_callback(_retrieve)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.udp = cast(asyncio.DatagramTransport, transport)

    def connect(self, addr: Any, transmit: bool = True) -> None:
        self.quic.connect(addr, now=clock())
        if transmit:
            self.transmit()

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        if self.peer_address is None:
            self.peer_address = (addr[0].removeprefix("::ffff:"), addr[1])
        self.quic.receive_datagram(cast(bytes, data), addr, now=clock())
        process_events(self)
        self.transmit_soon()

    def transmit_soon(self) -> None:
        """Transmit once, later in this turn of the event loop."""
        if not self._transmit_pending:
            self._transmit_pending = True
            self.loop.call_soon(self.transmit)

    def transmit(self) -> None:
        """Send what aioquic has to send now, and arm the timer for its next deadline."""
        self._transmit_pending = False
        transport = self.udp
        if transport is None:
            return
        now = clock()
        sendto = transport.sendto
        for data, addr in self.quic.datagrams_to_send(now=now):
            sendto(data, addr)
        if self.stream is not None:
            # Acknowledgements free the stream's buffer but raise no event.
            self.stream.check_writable()
        deadline = self.quic.get_timer()
        if deadline is None:
            if self._wake is not None:
                self._wake.cancel()
                self._wake, self._wake_at = None, math.inf
        elif deadline < self._wake_at:
            if self._wake is not None:
                self._wake.cancel()
            self._wake_at = deadline
            self._wake = self.loop.call_later(max(0.0, deadline - now), self._timer_fired)

    def _timer_fired(self) -> None:
        self._wake, self._wake_at = None, math.inf
        self.quic.handle_timer(now=clock())
        process_events(self)
        self.transmit()

    def open_stream(self) -> PeerLink:
        """The dialler's side: open the peering stream."""
        stream_id = self.quic.get_next_available_stream_id()
        return self._attach(stream_id)

    def _attach(self, stream_id: int) -> PeerLink:
        expected = self.expected_key if self.outbound is not None else None
        link = PeerLink(self.node, self.outbound, scheme="quic", expected_key=expected)
        self.link = link
        self.stream = QuicStreamTransport(self, stream_id, link)
        link.connection_made(self.stream)
        return link

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, HandshakeCompleted):
            if not self.handshake.done():
                self.handshake.set_result(None)
            if self.link is not None:
                self.link.certificate_key = self.certificate_key()
        elif isinstance(event, StreamDataReceived):
            if self.link is None:
                if self.outbound is not None or event.stream_id != 0:
                    return  # only the dialler opens a stream, and only one
                self._attach(event.stream_id)
            if self.stream is not None and event.stream_id == self.stream.stream_id and event.data:
                assert self.link is not None
                self.link.data_received(event.data)
            if event.end_stream:
                self.close()
        elif isinstance(event, ConnectionTerminated):
            self.connection_ended(event.reason_phrase or f"QUIC connection closed ({event.error_code})")

    def certificate_key(self) -> bytes | None:
        return peer_certificate_key(self.quic)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.connection_ended(str(exc) if exc else "QUIC transport closed")

    def connection_ended(self, reason: str) -> None:
        """The peering is over (once): tell the link."""
        if self._lost:
            return
        self._lost = True
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError(reason))
        if self.link is not None:
            if not self.link.closed:
                self.link.close_reason = reason
            self.link.connection_lost(None)


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


async def dial(
    node: LinkOwner, host: str, port: int, outbound: str, timeout: float, expected_key: bytes | None = None
) -> PeerLink:
    """Open a QUIC peering to ``host:port``; returns its link, handshake pending."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    family, _, _, _, address = infos[0]
    connection = QuicConnection(configuration=configuration(node.identity, client=True))
    bind = ("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0)
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: QuicPeerProtocol(connection, node, outbound), local_addr=bind
    )
    assert isinstance(protocol, QuicPeerProtocol)
    protocol.peer_address = (str(address[0]), int(address[1]))
    protocol.expected_key = expected_key
    protocol.connect(address)
    try:
        await asyncio.wait_for(asyncio.shield(protocol.handshake), timeout)
    except BaseException:
        protocol.close()
        transport.close()
        raise
    link = protocol.open_stream()
    link.certificate_key = protocol.certificate_key()
    link.lost.add_done_callback(lambda _: transport.close())
    return link
