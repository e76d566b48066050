"""Every reach into aioquic's internals, and the start-up check that the
installed aioquic still has them.

The project relies on things aioquic keeps private; they are all here, as
small named functions and :class:`HookedConnection`, so that an aioquic release
that renames one breaks this module and nothing else:

* a packet's header read from a datagram that belongs to no connection yet
  (aioquic's reader takes a buffer from its private ``_buffer`` module):
  :func:`read_header`;
* the certificate the other side proved (aioquic's TLS context keeps it private):
  :func:`peer_certificate_key`;
* the bytes a stream still buffers (backpressure for writers), the streams
  aioquic still keeps, the smoothed round-trip time, when a packet last
  decrypted, the stateless reset tokens the other side gave:
  :func:`stream_buffered_bytes`, :func:`live_stream_ids`,
  :func:`smoothed_rtt_s`, :func:`packet_received_at`, :func:`peer_reset_tokens`;
* for a protocol driven by hand, aioquic's own event dispatch (which also tells a
  listener about new connection IDs), a listener's socket, and telling a
  listener to forget a connection: :func:`process_events`,
  :func:`server_transport`, :func:`forget_connection`;
* the private methods and state of aioquic's connection that sessions change
  (the server's certificate request, the stream receive window, the datagram
  size, the stateless reset tokens of our connection IDs), as named hooks and
  properties: :class:`HookedConnection`.

Each of these is decorated with what it relies on and a probe that finds it;
:func:`check_aioquic` runs those probes when a node starts and raises
:class:`QuicEngineError`, naming the aioquic version and what is missing, so
that a release without them fails at start rather than with sessions or
peerings that misbehave.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, KeysView
from importlib.metadata import PackageNotFoundError, version
from typing import ClassVar

from aioquic._buffer import Buffer
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer
from aioquic.quic import connection as quic_connection
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.congestion.base import create_congestion_control
from aioquic.quic.connection import QuicConnection, QuicConnectionId, QuicNetworkPath
from aioquic.quic.packet import QuicFrameType, QuicHeader, pull_quic_header, pull_quic_transport_parameters
from aioquic.quic.packet_builder import QuicPacketBuilder
from aioquic.quic.recovery import QuicPacketPacer, QuicPacketSpace
from aioquic.quic.stream import QuicStream
from aioquic.tls import Context as TlsContext
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from router.quic.errors import QuicEngineError
from router.quic.requirements import Requirements, has_callable, keeps_transport, set_in_init

__all__ = [
    "REQUIREMENTS",
    "HookedConnection",
    "aioquic_version",
    "check_aioquic",
    "forget_connection",
    "live_stream_ids",
    "packet_received_at",
    "peer_certificate_key",
    "peer_reset_tokens",
    "process_events",
    "pull_quic_transport_parameters",
    "read_header",
    "server_transport",
    "smoothed_rtt_s",
    "stream_buffered_bytes",
]

REQUIREMENTS = Requirements()
"""What this module relies on beyond aioquic's public API, noted by each hook below."""
relies_on = REQUIREMENTS.relies_on


def aioquic_version() -> str:
    try:
        return version("aioquic")
    except PackageNotFoundError:
        return "(version unknown)"


def _probe_connection() -> QuicConnection:
    return QuicConnection(configuration=QuicConfiguration(is_client=True))


# ------------------------------------------------------------------ reading state


def read_header(data: bytes, host_cid_length: int) -> QuicHeader:
    """The QUIC header at the start of ``data``; ValueError if there is none."""
    return pull_quic_header(Buffer(data=data), host_cid_length=host_cid_length)


def _has_peer_certificate() -> bool:
    return TlsContext(is_client=True)._peer_certificate is None


@relies_on("tls.Context._peer_certificate", _has_peer_certificate)
def peer_certificate_key(connection: QuicConnection) -> bytes | None:
    """The ed25519 key that the other side's certificate names (and the TLS
    handshake proved), or None (no certificate yet, or not an ed25519 key)."""
    certificate = connection.tls._peer_certificate
    if certificate is None:
        return None
    public = certificate.public_key()
    return public.public_bytes_raw() if isinstance(public, Ed25519PublicKey) else None


def _has_streams() -> bool:
    return isinstance(_probe_connection()._streams, dict)


def _has_sender_buffer() -> bool:
    return isinstance(QuicStream(stream_id=0).sender._buffer, bytearray)


@relies_on("QuicConnection._streams", _has_streams)
@relies_on("QuicStreamSender._buffer", _has_sender_buffer)
def stream_buffered_bytes(connection: QuicConnection, stream_id: int) -> int:
    """Bytes written to ``stream_id`` that aioquic still holds: not sent yet, or
    sent and not acknowledged yet.  0 for a stream it no longer keeps."""
    stream = connection._streams.get(stream_id)
    return len(stream.sender._buffer) if stream is not None else 0


@relies_on("QuicConnection._streams", _has_streams)
def live_stream_ids(connection: QuicConnection) -> KeysView[int]:
    """The streams aioquic still keeps (a live view).  Once it has discarded a
    stream, finished both ways, nothing more arrives for it."""
    return connection._streams.keys()


def _has_smoothed_rtt() -> bool:
    return isinstance(_probe_connection()._loss._rtt_smoothed, float)


@relies_on("QuicConnection._loss._rtt_smoothed", _has_smoothed_rtt)
def smoothed_rtt_s(connection: QuicConnection) -> float | None:
    """The smoothed round-trip time in seconds, or None before the first sample."""
    rtt = connection._loss._rtt_smoothed
    return rtt or None


def _has_received_times() -> bool:
    spaces = _probe_connection()._spaces
    return isinstance(spaces, dict) and QuicPacketSpace().largest_received_time is None


@relies_on("QuicConnection._spaces[].largest_received_time", _has_received_times)
def packet_received_at(connection: QuicConnection) -> float | None:
    """When the connection last took in a packet it could decrypt (with a packet
    number higher than any before), or None: a datagram that fails decryption
    (garbage, or a packet of another run's connection) leaves it unchanged."""
    times = [space.largest_received_time for space in connection._spaces.values()]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def _has_peer_connection_ids() -> bool:
    connection = _probe_connection()
    return hasattr(connection._peer_cid, "stateless_reset_token") and isinstance(
        connection._peer_cid_available, list
    )


@relies_on("QuicConnection._peer_cid, _peer_cid_available", _has_peer_connection_ids)
def peer_reset_tokens(connection: QuicConnection) -> Iterator[bytes]:
    """The stateless reset tokens the other side gave us with the connection IDs
    we send to, the one in use first."""
    yield connection._peer_cid.stateless_reset_token
    for cid in connection._peer_cid_available:
        yield cid.stateless_reset_token


# ------------------------------------------------------------------ asyncio glue


@relies_on("QuicConnectionProtocol._process_events", has_callable(QuicConnectionProtocol, "_process_events"))
def process_events(protocol: QuicConnectionProtocol) -> None:
    """Hand the connection's pending events to ``protocol.quic_event_received``
    as aioquic's own protocol does.  That dispatch also tells a listener
    (:class:`QuicServer`) which connection IDs were issued and retired and when
    the connection ended, so a protocol that drives its connection by hand must
    go through it."""
    protocol._process_events()


@relies_on("QuicServer._transport", keeps_transport(QuicServer))
def server_transport(server: QuicServer) -> asyncio.DatagramTransport | None:
    """The UDP socket's transport of a listener made by aioquic's ``serve``."""
    return server._transport


@relies_on(
    "QuicConnectionProtocol._connection_terminated_handler",
    set_in_init(QuicConnectionProtocol.__init__, "_connection_terminated_handler"),
)
def forget_connection(protocol: QuicConnectionProtocol) -> None:
    """Tell the listener that made ``protocol`` to forget its connection, as
    aioquic's dispatch does when the connection reports its end."""
    protocol._connection_terminated_handler()


# ------------------------------------------------------------------ the connection's hooks


def _has_request_client_certificate() -> bool:
    return isinstance(TlsContext(is_client=False)._request_client_certificate, bool)


def _has_connection_ids() -> bool:
    cid = _probe_connection()._host_cids[0]
    return isinstance(cid.cid, bytes) and hasattr(cid, "stateless_reset_token") and hasattr(cid, "was_sent")


def _has_resizable_datagrams() -> bool:
    connection = _probe_connection()
    loss = connection._loss
    return (
        isinstance(connection._max_datagram_size, int)
        and isinstance(loss._cc.bytes_in_flight, int)
        and isinstance(loss._pacer, QuicPacketPacer)
        and isinstance(connection._configuration.congestion_control_algorithm, str)
    )


def _has_handshake_confirmed() -> bool:
    return _probe_connection()._handshake_confirmed is False


def _has_path_challenges() -> bool:
    return hasattr(QuicNetworkPath(("::1", 1)), "remote_challenges") and isinstance(
        _probe_connection()._network_paths, list
    )


RESIZABLE_DATAGRAMS = "QuicConnection._max_datagram_size, _configuration, _loss._cc, _loss._pacer"
"""What changing the datagram size reaches: one requirement of the hooks that do."""


class HookedConnection(QuicConnection):
    """aioquic's connection with the private methods and state that sessions
    change reached through public names: a subclass overrides
    :meth:`connection_ids_replenished` and :meth:`stream_limit`, sets
    :attr:`asks_client_certificate`, and reads or changes the rest through the
    properties and methods here.  Unless a subclass does, it behaves as aioquic's
    connection, except that a stream's receive limit stays where it is instead
    of doubling as data arrives."""

    asks_client_certificate: ClassVar[bool] = False
    """Whether a server asks the client for a certificate (aioquic's never does)."""

    def __init__(
        self, *, configuration: QuicConfiguration, original_destination_connection_id: bytes | None = None
    ) -> None:
        super().__init__(
            configuration=configuration,
            original_destination_connection_id=original_destination_connection_id,
        )
        self.peer_max_udp_payload: int | None = None
        """The other side's ``max_udp_payload_size`` (None: it gave none, which
        means 65527 bytes, RFC 9000 section 18.2)."""

    # -------------------------------------------------------------- certificates

    @relies_on("QuicConnection._initialize", has_callable(QuicConnection, "_initialize"))
    @relies_on("tls.Context._request_client_certificate", _has_request_client_certificate)
    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        if self.asks_client_certificate:
            self.tls._request_client_certificate = True

    # -------------------------------------------------------------- connection IDs

    @property
    @relies_on("QuicConnection._host_cids", _has_connection_ids)
    def host_connection_ids(self) -> list[QuicConnectionId]:
        """Our connection IDs, each with the stateless reset token we give with it."""
        return self._host_cids

    @relies_on(
        "QuicConnection._replenish_connection_ids",
        has_callable(QuicConnection, "_replenish_connection_ids"),
    )
    def _replenish_connection_ids(self) -> None:
        super()._replenish_connection_ids()
        self.connection_ids_replenished()

    def connection_ids_replenished(self) -> None:
        """New connection IDs of ours were made (none of them sent yet)."""

    # -------------------------------------------------------------- datagram size

    @relies_on(
        "QuicConnection._parse_transport_parameters",
        has_callable(QuicConnection, "_parse_transport_parameters"),
    )
    def _parse_transport_parameters(self, data: bytes, from_session_ticket: bool = False) -> None:
        super()._parse_transport_parameters(data, from_session_ticket)
        # aioquic checks the value and then forgets it; read it again to keep it.
        self.peer_max_udp_payload = pull_quic_transport_parameters(Buffer(data=data)).max_udp_payload_size

    @property
    @relies_on("QuicConnection._handshake_confirmed", _has_handshake_confirmed)
    def handshake_confirmed(self) -> bool:
        return self._handshake_confirmed

    @property
    @relies_on(RESIZABLE_DATAGRAMS, _has_resizable_datagrams)
    def datagram_size(self) -> int:
        """The largest datagram the connection builds."""
        return self._max_datagram_size

    @datagram_size.setter
    def datagram_size(self, size: int) -> None:
        """Congestion control and pacing keep the size they were made for: for
        a moment's change only (:meth:`use_datagram_size` changes it for good)."""
        self._max_datagram_size = size

    @relies_on(RESIZABLE_DATAGRAMS, _has_resizable_datagrams)
    def use_datagram_size(self, size: int) -> None:
        """Build datagrams of up to ``size`` bytes from now on.  Congestion
        control and pacing are made afresh for the new size (aioquic sizes them
        by the datagram size when a connection is made), keeping the bytes in
        flight."""
        loss = self._loss
        in_flight = loss._cc.bytes_in_flight
        loss._cc = create_congestion_control(
            self._configuration.congestion_control_algorithm, max_datagram_size=size
        )
        loss._cc.bytes_in_flight = in_flight
        loss._pacer = QuicPacketPacer(max_datagram_size=size)
        self._max_datagram_size = size

    @relies_on("QuicConnection._network_paths[].remote_challenges", _has_path_challenges)
    def answering_path_challenge(self) -> bool:
        """Whether a PATH_CHALLENGE of the other side's waits for its answer."""
        return any(path.remote_challenges for path in self._network_paths)

    # -------------------------------------------------------------- stream receive window

    @relies_on("QuicConnection._write_stream_limits", has_callable(QuicConnection, "_write_stream_limits"))
    @relies_on(
        "QuicConnection._on_max_stream_data_delivery",
        has_callable(QuicConnection, "_on_max_stream_data_delivery"),
    )
    @relies_on(
        "aioquic.quic.connection.MAX_STREAM_DATA_FRAME_CAPACITY",
        lambda: isinstance(getattr(quic_connection, "MAX_STREAM_DATA_FRAME_CAPACITY", None), int),
    )
    @relies_on("QuicFrameType.MAX_STREAM_DATA", lambda: hasattr(QuicFrameType, "MAX_STREAM_DATA"))
    @relies_on("QuicPacketBuilder.start_frame", has_callable(QuicPacketBuilder, "start_frame"))
    def _write_stream_limits(
        self, builder: QuicPacketBuilder, space: QuicPacketSpace, stream: QuicStream
    ) -> None:
        """aioquic's writer of MAX_STREAM_DATA frames, with the limit moved by
        :meth:`stream_limit` instead of doubled as data arrives."""
        stream_id = stream.stream_id
        assert stream_id is not None  # aioquic's streams always have one
        if stream.max_stream_data_local:
            stream.max_stream_data_local = self.stream_limit(stream_id, stream.max_stream_data_local)
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

    def stream_limit(self, stream_id: int, limit: int) -> int:
        """How far the other side may send on ``stream_id``, whose limit is now
        ``limit`` (it may only grow)."""
        return limit


# ------------------------------------------------------------------ the start-up check


def check_aioquic() -> None:
    """Raise :class:`QuicEngineError` unless the installed aioquic has everything
    this module relies on.  Called once when a node starts."""
    missing = REQUIREMENTS.missing()
    if missing:
        raise QuicEngineError(
            f"aioquic {aioquic_version()} does not have what Pinewood's QUIC engine "
            f"(router/quic/aioquic_hooks.py) relies on: {', '.join(missing)}; "
            "install an aioquic release that has them"
        )
