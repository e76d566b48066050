"""The sessions layer's records: the codes a session or stream ends with, the
limits, one session's state, and the events the endpoint reports
(:mod:`router.sessions.endpoint` makes and changes them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # QUIC is loaded with the first session, not with this module
    from router.quic.aioquic_engine import AdjustedConnection

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


@dataclass(frozen=True, slots=True)
class Limits:
    max_sessions: int = 1024
    max_handshaking_per_key: int = 4
    connect_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class SessionUp:
    session: Session


@dataclass(frozen=True, slots=True)
class SessionDown:
    session: Session
    reason: str


@dataclass(frozen=True, slots=True)
class SessionAlive:
    """A probed session answered."""

    session: Session


@dataclass(frozen=True, slots=True)
class SessionSetAside:
    """A probed session did not answer but has streams open: it keeps them and takes no new ones."""

    session: Session


@dataclass(frozen=True, slots=True)
class StreamData:
    session: Session
    stream_id: int
    data: bytes
    end: bool


@dataclass(frozen=True, slots=True)
class StreamAborted:
    session: Session
    stream_id: int
    error_code: int


SessionEvent = SessionUp | SessionDown | SessionAlive | SessionSetAside | StreamData | StreamAborted


@dataclass(eq=False, slots=True)
class Session:
    """One QUIC connection with one other node, for one application protocol."""

    key: bytes
    alpn: str
    outbound: bool
    connection: AdjustedConnection
    created_at: float
    connect_deadline: float
    established: bool = False
    closed: bool = False
    close_reason: str = ""
    streams: set[int] = field(default_factory=set)
    cids: set[bytes] = field(default_factory=set)
    next_ping_at: float = float("inf")
    done_streams: set[int] = field(default_factory=set)
    rtt_s: float | None = None
    bytes_sent: int = 0
    bytes_received: int = 0
    last_heard_at: float = 0.0
    """When a packet of this session last arrived that decrypted (or it was created)."""
    probe_deadline: float = float("inf")
    """While a probe is out: when the session closes unless the other side answers."""
    probe_ping: int = 0
    """The PING the last probe sent; only its acknowledgement answers the probe."""
    set_aside: bool = False
    """A probe went unanswered while streams were open: no new streams go on it."""

    @property
    def probing(self) -> bool:
        return self.probe_deadline != float("inf")

    @property
    def address(self) -> tuple[str, int]:
        return (self.key.hex(), 0)
