"""One end-to-end session: aioquic's sans-I/O ``QuicConnection``, adjusted.

Two things aioquic does not do the way sessions need them:

* its server never asks the client for a certificate, but a session's listener
  must learn (and check) the key of whoever dials it, as Pinecone's sessions do
  (they require a client certificate);
* it raises a stream's receive window as data *arrives*, so a reader that stops
  reading would let its peer fill memory without bound.  Here the window moves
  with what the application has *consumed*: at most :data:`STREAM_WINDOW` bytes
  of a stream wait unread.

Both reach into aioquic's private attributes (``tls._request_client_certificate``
and the stream-limit writer); :func:`check_aioquic` fails loudly at start-up if a
release of aioquic no longer has them, rather than letting sessions misbehave.
"""

from __future__ import annotations

import ssl
from typing import Any

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import MAX_STREAM_DATA_FRAME_CAPACITY, QuicConnection
from aioquic.quic.packet import QuicFrameType
from aioquic.quic.packet_builder import QuicPacketBuilder
from aioquic.quic.stream import QuicStream
from aioquic.tls import CipherSuite
from aioquic.tls import Context as TlsContext
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from router.links.tls import node_credentials
from router.wire.keys import Identity

STREAM_WINDOW = 1 << 20
"""Bytes of one stream that may wait unread before the peer must stop sending."""

CONNECTION_WINDOW = 16 << 20
IDLE_TIMEOUT_S = 15.0  # as the reference's sessions
MAX_DATAGRAM_BYTES = 1200  # QUIC's smallest; what quic-go on the reference's router takes

CIPHER_SUITES = [
    CipherSuite.AES_128_GCM_SHA256,
    CipherSuite.AES_256_GCM_SHA384,
    CipherSuite.CHACHA20_POLY1305_SHA256,
]
"""TLS 1.3 suites in the order a session's server picks them: AES-128-GCM first, as
Go's TLS prefers it.  aioquic would pick AES-256-GCM, and the quic-go release that
the reference's go.mod names (v0.37.4) derives wrong handshake keys for that suite
when built with a current Go (it reads crypto/tls internals through linkname), so
its nodes could not open sessions to ours."""


def check_aioquic() -> None:
    """Raise RuntimeError if aioquic lacks the private hooks sessions rely on."""
    context = TlsContext(is_client=False)
    if not hasattr(context, "_request_client_certificate"):
        raise RuntimeError("this aioquic release cannot request client certificates")
    for name in ("_write_stream_limits", "_on_max_stream_data_delivery"):
        if not callable(getattr(QuicConnection, name, None)):
            raise RuntimeError(f"this aioquic release has no {name} to adjust")


def configuration(identity: Identity, alpns: list[str], *, client: bool) -> QuicConfiguration:
    config = QuicConfiguration(
        is_client=client,
        alpn_protocols=alpns,
        idle_timeout=IDLE_TIMEOUT_S,
        max_datagram_size=MAX_DATAGRAM_BYTES,
        max_data=CONNECTION_WINDOW,
        max_stream_data=STREAM_WINDOW,
        verify_mode=ssl.CERT_NONE,  # no authorities: the key is checked by hand
        cipher_suites=list(CIPHER_SUITES),
    )
    config.certificate, config.private_key = node_credentials(identity)
    return config


class SessionConnection(QuicConnection):
    """A QUIC connection whose server side asks for the client's certificate
    and whose stream windows follow what the application has read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.consumed: dict[int, int] = {}

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        self.tls._request_client_certificate = True

    def peer_certificate_key(self) -> bytes | None:
        """The ed25519 key the other side's certificate names (and proved), or None."""
        certificate = getattr(self.tls, "_peer_certificate", None)
        if certificate is None:
            return None
        public = certificate.public_key()
        return public.public_bytes_raw() if isinstance(public, Ed25519PublicKey) else None

    def stream_consumed(self, stream_id: int, count: int) -> None:
        """The application has read ``count`` more bytes of ``stream_id``."""
        self.consumed[stream_id] = self.consumed.get(stream_id, 0) + count

    def stream_forget(self, stream_id: int) -> None:
        self.consumed.pop(stream_id, None)

    def _write_stream_limits(self, builder: QuicPacketBuilder, space: Any, stream: QuicStream) -> None:
        stream_id = stream.stream_id
        assert stream_id is not None  # aioquic's streams always have one
        if stream.max_stream_data_local:
            wanted = self.consumed.get(stream_id, 0) + STREAM_WINDOW
            # Grant more only in steps of half a window, as aioquic would.
            if wanted - stream.max_stream_data_local >= STREAM_WINDOW // 2:
                stream.max_stream_data_local = wanted
        if stream.max_stream_data_local_sent != stream.max_stream_data_local:
            buf = builder.start_frame(
                QuicFrameType.MAX_STREAM_DATA,
                capacity=MAX_STREAM_DATA_FRAME_CAPACITY,
                handler=self._on_max_stream_data_delivery,
                handler_args=(stream,),
            )
            buf.push_uint_var(stream_id)
            buf.push_uint_var(stream.max_stream_data_local)
            stream.max_stream_data_local_sent = stream.max_stream_data_local
