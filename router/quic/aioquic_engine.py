"""aioquic, the QUIC engine of sessions (and of peerings, if chosen).

No module outside :mod:`router.quic` imports aioquic: what the rest of the
project uses of aioquic's public API (the configuration, the events, the packet
types) it takes from here, and what it needs beyond that API is here too, as
small named functions and classes, so that an aioquic release that renames
something breaks this module and nothing else:

* a packet's header read from a datagram that belongs to no connection yet
  (aioquic's reader takes a buffer from its private ``_buffer`` module):
  :func:`read_header`;
* the certificate the other side proved (aioquic's TLS context keeps it private):
  :func:`peer_certificate_key`;
* a session's server asks the client for a certificate, and a stream's receive
  window follows what the application has consumed rather than what has
  arrived: :class:`AdjustedConnection`;
* datagrams larger than a path's MTU allows, once the handshake is done and
  the other side has said it takes them (the overlay carries frames of up to
  64 KiB, so a session's packets need not be cut to a UDP path's size):
  :meth:`AdjustedConnection.enlarge_datagrams`;
* stateless reset tokens derived from a secret of the node's and the
  connection ID (aioquic draws them at random), so that a node that restarted
  can still reset the sessions its previous run held, and the tokens the other
  side gave us: :class:`AdjustedConnection`, :func:`is_stateless_reset`;
* the bytes a stream still buffers (backpressure for writers), the streams
  aioquic still keeps, the smoothed round-trip time, when a packet last
  decrypted: :func:`stream_buffered_bytes`, :func:`live_stream_ids`,
  :func:`smoothed_rtt_s`, :func:`packet_received_at`;
* for a protocol driven by hand, aioquic's own event dispatch (which also tells a
  listener about new connection IDs), and a listener's socket:
  :func:`process_events`, :func:`server_transport`;
* a peering's connection (:class:`~router.quic.peering.PeeringConnection` over
  aioquic's protocol class): :class:`AioquicPeering`.

:func:`check_aioquic` looks for every one of these in the installed aioquic when
the node starts and raises :class:`QuicEngineError`, naming the aioquic version
and what is missing, so that a release without them fails at start rather than
with sessions that misbehave.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import ssl
from collections.abc import Callable, KeysView
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aioquic._buffer import Buffer
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer, serve
from aioquic.quic import connection as quic_connection
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.congestion.base import create_congestion_control
from aioquic.quic.connection import NetworkAddress, QuicConnection, QuicNetworkPath
from aioquic.quic.events import (
    ConnectionIdIssued,
    ConnectionIdRetired,
    ConnectionTerminated,
    HandshakeCompleted,
    PingAcknowledged,
    StreamDataReceived,
    StreamReset,
)
from aioquic.quic.packet import (
    QuicFrameType,
    QuicHeader,
    QuicPacketType,
    pull_quic_header,
    pull_quic_transport_parameters,
)
from aioquic.quic.packet_builder import QuicPacketBuilder
from aioquic.quic.recovery import QuicPacketPacer, QuicPacketSpace
from aioquic.quic.stream import QuicStream
from aioquic.tls import CipherSuite
from aioquic.tls import Context as TlsContext
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from router.quic.errors import QuicEngineError
from router.quic.peering import Acceptor, PeeringConnection

__all__ = [
    "MIN_STATELESS_RESET_BYTES",
    "AdjustedConnection",
    "AioquicPeering",
    "CipherSuite",
    "ConnectionIdIssued",
    "ConnectionIdRetired",
    "ConnectionTerminated",
    "HandshakeCompleted",
    "PingAcknowledged",
    "QuicConfiguration",
    "QuicConnection",
    "QuicPacketType",
    "QuicServer",
    "StreamDataReceived",
    "StreamReset",
    "aioquic_version",
    "check_aioquic",
    "client_connection",
    "is_stateless_reset",
    "live_stream_ids",
    "packet_received_at",
    "peer_certificate_key",
    "peering_configuration",
    "process_events",
    "pull_quic_transport_parameters",
    "read_header",
    "serve",
    "server_transport",
    "smoothed_rtt_s",
    "stateless_reset_token",
    "stream_buffered_bytes",
]

RESET_TOKEN_BYTES = 16
"""The size of a QUIC stateless reset token (RFC 9000, section 10.3)."""


def aioquic_version() -> str:
    try:
        return version("aioquic")
    except PackageNotFoundError:
        return "(version unknown)"


# ------------------------------------------------------------------ reading state


def read_header(data: bytes, host_cid_length: int) -> QuicHeader:
    """The QUIC header at the start of ``data``; ValueError if there is none."""
    return pull_quic_header(Buffer(data=data), host_cid_length=host_cid_length)


def peer_certificate_key(connection: QuicConnection) -> bytes | None:
    """The ed25519 key that the other side's certificate names (and the TLS
    handshake proved), or None (no certificate yet, or not an ed25519 key)."""
    certificate = connection.tls._peer_certificate
    if certificate is None:
        return None
    public = certificate.public_key()
    return public.public_bytes_raw() if isinstance(public, Ed25519PublicKey) else None


def stream_buffered_bytes(connection: QuicConnection, stream_id: int) -> int:
    """Bytes written to ``stream_id`` that aioquic still holds: not sent yet, or
    sent and not acknowledged yet.  0 for a stream it no longer keeps."""
    stream = connection._streams.get(stream_id)
    return len(stream.sender._buffer) if stream is not None else 0


def live_stream_ids(connection: QuicConnection) -> KeysView[int]:
    """The streams aioquic still keeps (a live view).  Once it has discarded a
    stream, finished both ways, nothing more arrives for it."""
    return connection._streams.keys()


def smoothed_rtt_s(connection: QuicConnection) -> float | None:
    """The smoothed round-trip time in seconds, or None before the first sample."""
    rtt = connection._loss._rtt_smoothed
    return rtt or None


def packet_received_at(connection: QuicConnection) -> float | None:
    """When the connection last took in a packet it could decrypt (with a packet
    number higher than any before), or None: a datagram that fails decryption
    (garbage, or a packet of another run's connection) leaves it unchanged."""
    times = [space.largest_received_time for space in connection._spaces.values()]
    known = [t for t in times if t is not None]
    return max(known) if known else None


# ------------------------------------------------------------------ asyncio glue


def process_events(protocol: QuicConnectionProtocol) -> None:
    """Hand the connection's pending events to ``protocol.quic_event_received``
    as aioquic's own protocol does.  That dispatch also tells a listener
    (:class:`QuicServer`) which connection IDs were issued and retired and when
    the connection ended, so a protocol that drives its connection by hand must
    go through it."""
    protocol._process_events()


def server_transport(server: QuicServer) -> asyncio.DatagramTransport | None:
    """The UDP socket's transport of a listener made by aioquic's ``serve``."""
    return server._transport


# ------------------------------------------------------------------ peerings


def peering_configuration(
    cert_pem: bytes, key_pem: bytes, *, alpn: str, idle_timeout: float, client: bool
) -> QuicConfiguration:
    """A peering's configuration: the node's ed25519 certificate, no authorities
    (the key is checked by hand)."""
    config = QuicConfiguration(
        is_client=client, alpn_protocols=[alpn], idle_timeout=idle_timeout, verify_mode=ssl.CERT_NONE
    )
    key = load_pem_private_key(key_pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise QuicEngineError("a peering's key must be an ed25519 key")
    config.certificate, config.private_key = x509.load_pem_x509_certificate(cert_pem), key
    return config


def client_connection(config: QuicConfiguration) -> QuicConnection:
    return QuicConnection(configuration=config)


class AioquicPeering(PeeringConnection, QuicConnectionProtocol):
    """A peering's connection on aioquic."""

    handshake_event = HandshakeCompleted
    stream_event = StreamDataReceived
    terminated_event = ConnectionTerminated

    def __init__(self, quic: QuicConnection, accept: Acceptor | None = None, **_: Any) -> None:
        QuicConnectionProtocol.__init__(self, quic)
        self._setup(quic, accept)

    def dispatch_events(self) -> None:
        process_events(self)

    def peer_key(self) -> bytes | None:
        return peer_certificate_key(self.quic)

    def rtt_s(self) -> float | None:
        return smoothed_rtt_s(self.quic)

    def unsent_bytes(self, stream_id: int) -> int:
        return stream_buffered_bytes(self.quic, stream_id)

    def forget(self) -> None:
        self._connection_terminated_handler()


# ------------------------------------------------------------------ the adjusted connection


class AdjustedConnection(QuicConnection):
    """aioquic's connection with two changes:

    * its server asks the client for a certificate (aioquic's never does), so the
      side that accepts learns, and can check, the key of whoever dialled it;
    * a stream's receive window follows what the application has consumed
      (:meth:`stream_consumed`), not what has arrived: at most the configured
      ``max_stream_data`` of a stream waits unread, so a reader that stops
      reading stops its peer instead of letting it fill memory.
    """

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
        self.peer_max_udp_payload: int | None = None
        """The other side's ``max_udp_payload_size`` (None: it gave none, which
        means 65527 bytes, RFC 9000 section 18.2)."""
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
        for host_cid in self._host_cids:
            if host_cid.stateless_reset_token:  # a client's first ID has none to give
                host_cid.stateless_reset_token = stateless_reset_token(self.reset_secret, host_cid.cid)

    def _replenish_connection_ids(self) -> None:
        super()._replenish_connection_ids()
        self._derive_reset_tokens()

    def _parse_transport_parameters(self, data: bytes, from_session_ticket: bool = False) -> None:
        super()._parse_transport_parameters(data, from_session_ticket)
        # aioquic checks the value and then forgets it; read it again to keep it.
        self.peer_max_udp_payload = pull_quic_transport_parameters(Buffer(data=data)).max_udp_payload_size

    def enlarge_datagrams(self, size: int) -> bool:
        """Send datagrams of up to ``size`` bytes once the handshake is confirmed
        (so that no datagram with an Initial or Handshake packet grows: a client's
        are padded to the full size), if the other side takes them (its
        ``max_udp_payload_size``); whether it will."""
        allowed = self.peer_max_udp_payload
        if size <= self._max_datagram_size or (allowed is not None and allowed < size):
            return False
        self._datagram_size_wanted = size
        return True

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, NetworkAddress]]:
        if self._datagram_size_wanted is not None and self._handshake_confirmed:
            self._use_datagram_size(self._datagram_size_wanted)
            self._datagram_size_wanted = None
        if self._max_datagram_size > self.small_datagram_size and any(
            path.remote_challenges for path in self._network_paths
        ):
            # aioquic pads a datagram that answers a PATH_CHALLENGE to its full
            # size: a 40-byte challenge must not draw 16 KiB back.
            size, self._max_datagram_size = self._max_datagram_size, self.small_datagram_size
            try:
                return super().datagrams_to_send(now)
            finally:
                self._max_datagram_size = size
        return super().datagrams_to_send(now)

    def _use_datagram_size(self, size: int) -> None:
        """Congestion control and pacing are made afresh for the new size
        (aioquic sizes them by the datagram size when a connection is made),
        keeping the bytes in flight."""
        loss = self._loss
        in_flight = loss._cc.bytes_in_flight
        loss._cc = create_congestion_control(
            self._configuration.congestion_control_algorithm, max_datagram_size=size
        )
        loss._cc.bytes_in_flight = in_flight
        loss._pacer = QuicPacketPacer(max_datagram_size=size)
        self._max_datagram_size = size

    def stream_consumed(self, stream_id: int, count: int) -> None:
        """The application has read ``count`` more bytes of ``stream_id``."""
        self.consumed[stream_id] = self.consumed.get(stream_id, 0) + count

    def stream_forget(self, stream_id: int) -> None:
        self.consumed.pop(stream_id, None)

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        self.tls._request_client_certificate = True

    def _write_stream_limits(
        self, builder: QuicPacketBuilder, space: QuicPacketSpace, stream: QuicStream
    ) -> None:
        """aioquic's writer of MAX_STREAM_DATA frames, with the window moved by
        what was consumed instead of doubled as data arrives."""
        stream_id = stream.stream_id
        assert stream_id is not None  # aioquic's streams always have one
        if stream.max_stream_data_local:
            wanted = self.consumed.get(stream_id, 0) + self.stream_window
            # Grant more only in steps of half a window, as aioquic would.
            if wanted - stream.max_stream_data_local >= self.stream_window // 2:
                stream.max_stream_data_local = wanted
        if stream.max_stream_data_local_sent != stream.max_stream_data_local:
            buf = builder.start_frame(
                QuicFrameType.MAX_STREAM_DATA,
                capacity=quic_connection.MAX_STREAM_DATA_FRAME_CAPACITY,
                handler=self._on_max_stream_data_delivery,
                handler_args=(stream,),
            )
            buf.push_uint_var(stream_id)
            buf.push_uint_var(stream.max_stream_data_local)
            stream.max_stream_data_local_sent = stream.max_stream_data_local


# ------------------------------------------------------------------ the start-up check


def _has_request_client_certificate() -> bool:
    return isinstance(TlsContext(is_client=False)._request_client_certificate, bool)


def _has_peer_certificate() -> bool:
    return TlsContext(is_client=True)._peer_certificate is None


def _probe_connection() -> QuicConnection:
    return QuicConnection(configuration=QuicConfiguration(is_client=True))


def _has_streams() -> bool:
    return isinstance(_probe_connection()._streams, dict)


def _has_smoothed_rtt() -> bool:
    return isinstance(_probe_connection()._loss._rtt_smoothed, float)


def _has_sender_buffer() -> bool:
    return isinstance(QuicStream(stream_id=0).sender._buffer, bytearray)


def _has_connection_ids() -> bool:
    cid = _probe_connection()._host_cids[0]
    return isinstance(cid.cid, bytes) and hasattr(cid, "stateless_reset_token") and hasattr(cid, "was_sent")


def _has_peer_connection_ids() -> bool:
    connection = _probe_connection()
    return hasattr(connection._peer_cid, "stateless_reset_token") and isinstance(
        connection._peer_cid_available, list
    )


def _has_resizable_datagrams() -> bool:
    connection = _probe_connection()
    loss = connection._loss
    return (
        isinstance(connection._max_datagram_size, int)
        and isinstance(loss._cc.bytes_in_flight, int)
        and isinstance(loss._pacer, QuicPacketPacer)
        and isinstance(connection._configuration.congestion_control_algorithm, str)
    )


def _has_received_times() -> bool:
    spaces = _probe_connection()._spaces
    return isinstance(spaces, dict) and QuicPacketSpace().largest_received_time is None


def _server_keeps_transport() -> bool:
    # QuicServer needs a running loop to be made; connection_made alone is what
    # stores the transport, and a bare instance is enough to see where.
    probe = object.__new__(QuicServer)
    marker = object()
    QuicServer.connection_made(probe, marker)  # type: ignore[arg-type]
    return probe.__dict__.get("_transport") is marker


def _callable(owner: object, name: str) -> Callable[[], bool]:
    return lambda: callable(getattr(owner, name, None))


def stateless_reset_token(secret: bytes, cid: bytes) -> bytes:
    """The stateless reset token (RFC 9000, section 10.3.2) that a node whose
    reset secret is ``secret`` gives with the connection ID ``cid``."""
    return hmac.new(secret, cid, hashlib.sha256).digest()[:RESET_TOKEN_BYTES]


MIN_STATELESS_RESET_BYTES = 21
"""The smallest stateless reset: a short header's first byte, four or more
unpredictable bytes, and the 16-byte token (RFC 9000, section 10.3)."""


def is_stateless_reset(connection: QuicConnection, data: bytes) -> bool:
    """Whether ``data`` is a stateless reset of ``connection``: shaped as a
    short-header packet and ending in a token the other side gave us with one of
    the connection IDs we send to (aioquic does not look for these)."""
    if len(data) < MIN_STATELESS_RESET_BYTES or data[0] & 0xC0 != 0x40:
        return False
    tail = data[-RESET_TOKEN_BYTES:]
    if connection._peer_cid.stateless_reset_token == tail:
        return True
    return any(c.stateless_reset_token == tail for c in connection._peer_cid_available)


REQUIREMENTS: tuple[tuple[str, Callable[[], bool]], ...] = (
    ("tls.Context._request_client_certificate", _has_request_client_certificate),
    ("tls.Context._peer_certificate", _has_peer_certificate),
    (
        "QuicConnection._parse_transport_parameters",
        _callable(QuicConnection, "_parse_transport_parameters"),
    ),
    (
        "QuicConnection._max_datagram_size, _loss._cc, _loss._pacer",
        _has_resizable_datagrams,
    ),
    (
        "QuicConnection._network_paths[].remote_challenges",
        lambda: (
            hasattr(QuicNetworkPath(("::1", 1)), "remote_challenges")
            and isinstance(_probe_connection()._network_paths, list)
        ),
    ),
    (
        "QuicConnection._handshake_confirmed",
        lambda: _probe_connection()._handshake_confirmed is False,
    ),
    ("QuicConnection._initialize", _callable(QuicConnection, "_initialize")),
    ("QuicConnection._write_stream_limits", _callable(QuicConnection, "_write_stream_limits")),
    (
        "QuicConnection._on_max_stream_data_delivery",
        _callable(QuicConnection, "_on_max_stream_data_delivery"),
    ),
    (
        "aioquic.quic.connection.MAX_STREAM_DATA_FRAME_CAPACITY",
        lambda: isinstance(getattr(quic_connection, "MAX_STREAM_DATA_FRAME_CAPACITY", None), int),
    ),
    ("QuicFrameType.MAX_STREAM_DATA", lambda: hasattr(QuicFrameType, "MAX_STREAM_DATA")),
    ("QuicPacketBuilder.start_frame", _callable(QuicPacketBuilder, "start_frame")),
    ("QuicConnection._streams", _has_streams),
    ("QuicConnection._loss._rtt_smoothed", _has_smoothed_rtt),
    ("QuicStreamSender._buffer", _has_sender_buffer),
    ("QuicConnectionProtocol._process_events", _callable(QuicConnectionProtocol, "_process_events")),
    ("QuicServer._transport", _server_keeps_transport),
    (
        "QuicConnectionProtocol._connection_terminated_handler",
        lambda: "_connection_terminated_handler" in inspect.getsource(QuicConnectionProtocol.__init__),
    ),
    ("QuicConnection._host_cids", _has_connection_ids),
    ("QuicConnection._replenish_connection_ids", _callable(QuicConnection, "_replenish_connection_ids")),
    ("QuicConnection._peer_cid, _peer_cid_available", _has_peer_connection_ids),
    ("QuicConnection._spaces[].largest_received_time", _has_received_times),
)
"""What this module relies on beyond aioquic's public API, and how to see it is there."""


def _present(probe: Callable[[], bool]) -> bool:
    try:
        return probe()
    except Exception:  # a probe that cannot even run means the thing is gone
        return False


def check_aioquic() -> None:
    """Raise :class:`QuicEngineError` unless the installed aioquic has everything
    this module relies on.  Called once when a node starts."""
    missing = [name for name, probe in REQUIREMENTS if not _present(probe)]
    if missing:
        raise QuicEngineError(
            f"aioquic {aioquic_version()} does not have what Pinewood's QUIC engine "
            f"(router/quic/aioquic_engine.py) relies on: {', '.join(missing)}; "
            "install an aioquic release that has them"
        )
