"""One end-to-end session's QUIC connection: its configuration and limits.

A session is aioquic's sans-I/O connection as :mod:`router.quic.aioquic_connection` adjusts
it (:class:`~router.quic.aioquic_connection.AdjustedConnection`):

* its server asks the client for a certificate, so a session's listener learns
  (and checks) the key of whoever dials it, as Pinecone's sessions do (they
  require a client certificate);
* a stream's receive window moves with what the application has *consumed*, not
  with what has arrived: at most :data:`STREAM_WINDOW` bytes of a stream wait
  unread, so a reader that stops reading cannot make its peer fill memory.
"""

from __future__ import annotations

import ssl

from router.links.tls import node_credentials
from router.quic.aioquic_connection import CipherSuite, QuicConfiguration
from router.wire.keys import Identity

STREAM_WINDOW = 1 << 20
"""Bytes of one stream that may wait unread before the peer must stop sending."""

CONNECTION_WINDOW = 16 << 20
IDLE_TIMEOUT_S = 15.0  # as the reference's sessions
MAX_DATAGRAM_BYTES = 1200  # QUIC's smallest; what quic-go on the reference's router takes
OVERLAY_DATAGRAM_BYTES = 16384
"""The datagrams a session sends once its handshake is done, if the other side
takes them.  The overlay carries a datagram as one traffic frame over TCP or
QUIC peerings, up to 64 KiB, so there is no path MTU to keep under; larger
packets cost aioquic (and the routers on the way) far less per byte.  quic-go,
the reference's, says it takes 1452 bytes, so sessions with Go nodes keep to
MAX_DATAGRAM_BYTES; Pinewood nodes (aioquic sets no limit, so 65527) take these."""

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


def configuration(identity: Identity, alpns: list[str], *, client: bool) -> QuicConfiguration:
    """A session's configuration; its ``max_stream_data`` is the window that
    :class:`~router.quic.aioquic_connection.AdjustedConnection` keeps ahead of what was read."""
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
