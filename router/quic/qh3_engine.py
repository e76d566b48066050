"""qh3, the second QUIC engine, for peerings between Pinewood nodes.

qh3 is a maintained fork of aioquic whose packet engine (packet protection,
recovery, congestion control, streams) is native code; its Python API is
aioquic's, so a peering drives either one the same way.  It is used for
``quic://`` peerings only: sessions need a server that asks for the client's
certificate and a receive window that follows what the application consumed,
and qh3's native core offers neither (see docs/design.md, "QUIC engines").

What the peering needs beyond qh3's public API is here, as with
:mod:`router.quic.aioquic_hooks`:

* the smoothed round-trip time (kept by the native core):
  :func:`smoothed_rtt_s`;
* for a protocol driven by hand, qh3's event dispatch and a listener's socket:
  :func:`process_events`, :func:`server_transport`;
* a peering's connection (:class:`~router.quic.peering.PeeringConnection` over
  qh3's protocol class): :class:`Qh3Peering`.

The certificate the other side proved and the bytes a stream has not sent yet
are public in qh3 (``get_peercert``, ``get_send_buffer_size``).
:func:`check_qh3` looks for every one of these in the installed qh3 when a node
that uses it starts.
"""

from __future__ import annotations

import asyncio
import ssl
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from qh3._hazmat import QuicConnectionCore
from qh3.asyncio.protocol import QuicConnectionProtocol
from qh3.asyncio.server import QuicServer, serve
from qh3.quic.configuration import QuicConfiguration
from qh3.quic.connection import QuicConnection, QuicConnectionError
from qh3.quic.events import ConnectionTerminated, HandshakeCompleted, QuicEvent, StreamDataReceived
from qh3.quic.packet import QuicErrorCode
from qh3.tls import SignatureAlgorithm

from router.quic.errors import QuicEngineError
from router.quic.peering import Acceptor, PeeringConnection
from router.quic.requirements import Probe, has_callable, keeps_transport, missing, set_in_init

__all__ = [
    "ConnectionTerminated",
    "HandshakeCompleted",
    "Qh3Peering",
    "QuicConfiguration",
    "QuicConnection",
    "QuicConnectionError",
    "QuicConnectionProtocol",
    "QuicEvent",
    "QuicServer",
    "StreamDataReceived",
    "check_qh3",
    "client_connection",
    "peer_certificate_key",
    "peering_configuration",
    "process_events",
    "qh3_version",
    "serve",
    "server_transport",
    "smoothed_rtt_s",
    "stream_unsent_bytes",
]

ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
"""The DER of an ed25519 SubjectPublicKeyInfo up to the 32 key bytes (RFC 8410)."""


def qh3_version() -> str:
    try:
        return version("qh3")
    except PackageNotFoundError:
        return "(version unknown)"


def peering_configuration(
    cert_pem: bytes, key_pem: bytes, *, alpn: str, idle_timeout: float, client: bool
) -> QuicConfiguration:
    """A peering's configuration: the node's ed25519 certificate, no authorities
    (the key is checked by hand).  qh3 leaves EdDSA out of the signature
    algorithms it offers by default, so a client lists it."""
    config = QuicConfiguration(
        is_client=client, alpn_protocols=[alpn], idle_timeout=idle_timeout, verify_mode=ssl.CERT_NONE
    )
    config.load_cert_chain(cert_pem, key_pem)
    if client:
        config.signature_algorithms = [SignatureAlgorithm.ED25519]
    return config


def client_connection(config: QuicConfiguration) -> QuicConnection:
    return QuicConnection(configuration=config)


def peer_certificate_key(connection: QuicConnection) -> bytes | None:
    """The ed25519 key that the other side's certificate names, or None."""
    certificate = connection.get_peercert()
    if certificate is None:
        return None
    spki = certificate.public_key()
    if len(spki) != len(ED25519_SPKI_PREFIX) + 32 or not spki.startswith(ED25519_SPKI_PREFIX):
        return None
    return spki[len(ED25519_SPKI_PREFIX) :]


def stream_unsent_bytes(connection: QuicConnection, stream_id: int) -> int:
    """Bytes written to ``stream_id`` that qh3 has not sent yet (0 for a stream
    it no longer keeps).  Unlike aioquic's figure, bytes sent and not yet
    acknowledged are not counted: qh3 keeps those in its native core."""
    return connection.get_send_buffer_size(stream_id)


def smoothed_rtt_s(connection: QuicConnection) -> float | None:
    """The smoothed round-trip time in seconds, or None before the first sample."""
    core = connection._core
    return None if core is None else core.smoothed_rtt


MAX_BUILD_FAILURE_S = 1.0
"""How long qh3's native core may keep failing to build anything before its
connection counts as broken.  A first flight's failure lasts one or two timer
rounds (about 50 ms on loopback, measured): the core builds again once a timer
or a packet from the other side has moved it on."""


def datagrams_to_send(connection: QuicConnection, now: float) -> tuple[list[tuple[bytes, Any]], bool]:
    """The datagrams to send now, as ``QuicConnection.datagrams_to_send`` gives
    them, and whether the native core failed to build one, except that the
    datagrams built before such a failure are kept and sent.  qh3 2.1 fails so
    when, as a server, it answers the Initial of an aioquic client; its
    ``datagrams_to_send`` then raises and the datagrams it had built (the
    ServerHello among them) are never sent, though the core counts them sent, and
    the handshake waits for their loss to be noticed.  The next call builds again
    from where the failed one stopped."""
    core = connection._core
    datagrams: list[tuple[bytes, Any]] = []
    if core is None:
        return datagrams, False
    while True:
        try:
            transmit = core.poll_transmit(now)
        except RuntimeError:
            return datagrams, True
        if transmit is None:
            return datagrams, False
        datagrams.append((transmit[0], transmit[1]))


def process_events(protocol: QuicConnectionProtocol) -> None:
    """Hand the connection's pending events to ``protocol.quic_event_received``
    through qh3's own dispatch, which also tells a listener about connection IDs."""
    protocol._process_events()


def server_transport(server: QuicServer) -> asyncio.DatagramTransport | None:
    """The UDP socket's transport of a listener made by qh3's ``serve``."""
    return server._transport


class Qh3Peering(PeeringConnection, QuicConnectionProtocol):
    """A peering's connection on qh3."""

    handshake_event = HandshakeCompleted
    stream_event = StreamDataReceived
    terminated_event = ConnectionTerminated
    engine_errors = (QuicConnectionError,)

    def __init__(self, quic: QuicConnection, accept: Acceptor | None = None, **_: Any) -> None:
        QuicConnectionProtocol.__init__(self, quic)
        self._setup(quic, accept)
        self.failing_since: float | None = None

    def dispatch_events(self) -> None:
        process_events(self)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Any]]:
        """What the core built; :class:`QuicConnectionError` once it has failed
        without building anything, every time, for :data:`MAX_BUILD_FAILURE_S`."""
        datagrams, failed = datagrams_to_send(self.quic, now)
        if not failed or datagrams:
            self.failing_since = None
        elif self.failing_since is None:
            self.failing_since = now
        elif now - self.failing_since >= MAX_BUILD_FAILURE_S:
            raise QuicConnectionError(
                QuicErrorCode.INTERNAL_ERROR,
                None,
                f"qh3's packet builder has failed for {now - self.failing_since:.1f} s",
            )
        return datagrams

    def peer_key(self) -> bytes | None:
        return peer_certificate_key(self.quic)

    def rtt_s(self) -> float | None:
        return smoothed_rtt_s(self.quic)

    def unsent_bytes(self, stream_id: int) -> int:
        return stream_unsent_bytes(self.quic, stream_id)

    def forget(self) -> None:
        self._connection_terminated_handler()


# ------------------------------------------------------------------ the start-up check


def _has_core() -> bool:
    return "_core" in client_connection(QuicConfiguration(is_client=True)).__dict__


REQUIREMENTS: tuple[tuple[str, Probe], ...] = (
    ("QuicConnection._core", _has_core),
    ("QuicConnectionCore.smoothed_rtt", lambda: hasattr(QuicConnectionCore, "smoothed_rtt")),
    ("QuicConnection.get_peercert", has_callable(QuicConnection, "get_peercert")),
    ("QuicConnection.get_send_buffer_size", has_callable(QuicConnection, "get_send_buffer_size")),
    ("QuicConfiguration.load_cert_chain", has_callable(QuicConfiguration, "load_cert_chain")),
    ("QuicConnectionProtocol._process_events", has_callable(QuicConnectionProtocol, "_process_events")),
    ("QuicServer._transport", keeps_transport(QuicServer)),
    (
        "QuicConnectionProtocol._connection_terminated_handler",
        set_in_init(QuicConnectionProtocol.__init__, "_connection_terminated_handler"),
    ),
)
"""What this module relies on beyond qh3's public API, and how to see it is there."""


def check_qh3() -> None:
    """Raise :class:`QuicEngineError` unless the installed qh3 has everything
    this module relies on."""
    absent = missing(REQUIREMENTS)
    if absent:
        raise QuicEngineError(
            f"qh3 {qh3_version()} does not have what Pinewood's peering engine "
            f"(router/quic/qh3_engine.py) relies on: {', '.join(absent)}; "
            'install a qh3 release that has them, or set quic_engine = "aioquic"'
        )
