"""The aioquic peering engine: a peering's connection over aioquic's protocol
class, and the configuration, dial and listen pieces that
:func:`router.quic.engines.peering_engine` takes when aioquic carries peerings.

It does not load the sessions' connection (:mod:`router.quic.aioquic_connection`);
what it reaches of aioquic's internals it reaches through
:mod:`router.quic.aioquic_hooks`, whose :func:`check_aioquic` it runs at start.
"""

from __future__ import annotations

import ssl
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted, StreamDataReceived
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from router.quic.aioquic_hooks import (
    aioquic_version,
    check_aioquic,
    forget_connection,
    peer_certificate_key,
    process_events,
    server_transport,
    smoothed_rtt_s,
    stream_buffered_bytes,
)
from router.quic.errors import QuicEngineError
from router.quic.peering import Acceptor, PeeringConnection

__all__ = [
    "AioquicPeering",
    "aioquic_version",
    "check_aioquic",
    "client_connection",
    "peering_configuration",
    "serve",
    "server_transport",
]


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
        forget_connection(self)
