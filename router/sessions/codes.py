"""What sessions and streams end with: QUIC close codes, stream reset codes,
and the reason a session that never heard back closes with."""

from __future__ import annotations

from enum import IntEnum

UNREACHABLE = "no answer from the node in time (offline or unreachable)"
"""Why a session that never heard back from the other node closed."""
CRYPTO_ERROR = 0x100
"""QUIC's transport error code for a TLS alert is this plus the alert (RFC 9001, section 4.8)."""


class TlsAlert(IntEnum):
    """TLS alerts (RFC 8446, section 6) that a session's own checks of a handshake end with."""

    BAD_CERTIFICATE = 42
    NO_APPLICATION_PROTOCOL = 120


class CloseCode(IntEnum):
    """QUIC transport error codes that a session is closed with (CONNECTION_CLOSE)."""

    NO_ERROR = 0x0
    BAD_CERTIFICATE = CRYPTO_ERROR + TlsAlert.BAD_CERTIFICATE
    """The other side's certificate does not name the key the session is addressed by."""
    NO_APPLICATION_PROTOCOL = CRYPTO_ERROR + TlsAlert.NO_APPLICATION_PROTOCOL
    """The two sides share no application protocol (ALPN)."""


class StreamResetCode(IntEnum):
    """Application error codes that a stream is broken off with (RESET_STREAM and
    STOP_SENDING); an application on top may add codes of its own."""

    ABORTED = 0x0
    """The application gave up on the stream; no other reason given."""
    REFUSED = 0x10
    """Nothing here takes streams for this protocol, or no more of them now."""
