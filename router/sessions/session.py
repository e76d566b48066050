"""One session's state and the moves it may make, and the limits of a node's
sessions (:mod:`router.sessions.endpoint` makes and changes them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, auto
from typing import TYPE_CHECKING

from router.sessions.errors import SessionStateError

if TYPE_CHECKING:  # QUIC is loaded with the first session, not with this module
    from router.quic.aioquic_connection import AdjustedConnection


class SessionState(Enum):
    """Where a session is in its life; it moves only along :data:`TRANSITIONS`.

    One value rather than a flag per fact, because the facts are not
    independent: a session is probed only once it is up, set aside only when a
    probe went unanswered, and a closed one is none of these.  Closing keeps
    one fact, whether the session had come up, because the runtime treats the
    two apart: a stream retries on a fresh session when an established one
    went away, and fails with the reason when the session never came up.
    """

    CONNECTING = auto()
    """Handshaking: not up yet."""
    ESTABLISHED = auto()
    """Up: takes new streams."""
    PROBING = auto()
    """Up, with a probe out: new streams wait for its answer."""
    SET_ASIDE = auto()
    """Its probe went unanswered while streams were open: keeps them, takes no new ones."""
    CLOSED = auto()
    """Closed after it had come up."""
    FAILED = auto()
    """Closed before it came up: timed out, refused, or stopped while connecting."""


TRANSITIONS: frozenset[tuple[SessionState, SessionState]] = frozenset(
    {
        (SessionState.CONNECTING, SessionState.ESTABLISHED),  # handshake done, key and protocol checked
        (SessionState.CONNECTING, SessionState.FAILED),  # timed out, refused, or closed on the way
        (SessionState.ESTABLISHED, SessionState.PROBING),  # quiet too long: a probe goes out
        (SessionState.ESTABLISHED, SessionState.CLOSED),  # closed, idle, or reset by the other side
        (SessionState.PROBING, SessionState.ESTABLISHED),  # the probe's PING was acknowledged
        (SessionState.PROBING, SessionState.SET_ASIDE),  # unanswered with streams open
        (SessionState.PROBING, SessionState.CLOSED),  # unanswered with no streams, or closed meanwhile
        (SessionState.SET_ASIDE, SessionState.CLOSED),  # its streams ended and it idled out, or closed
    }
)
"""Every (from, to) move a session may make; any other is a :class:`SessionStateError`."""

LIVE_STATES = frozenset({SessionState.CONNECTING, SessionState.ESTABLISHED, SessionState.PROBING})
"""A session in these is the one a new stream to its key and protocol goes on."""
UP_STATES = frozenset({SessionState.ESTABLISHED, SessionState.PROBING, SessionState.SET_ASIDE})
"""Up and not closed: carries streams and is kept alive while it has them."""
CLOSED_STATES = frozenset({SessionState.CLOSED, SessionState.FAILED})
"""Closed: nothing more is sent or delivered on it."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_sessions: int = 1024
    max_handshaking_per_key: int = 4
    connect_timeout_s: float = 10.0


@dataclass(eq=False, slots=True)
class Session:
    """One QUIC connection with one other node, for one application protocol; its
    state changes only by :meth:`move_to`."""

    key: bytes
    alpn: str
    outbound: bool
    connection: AdjustedConnection
    created_at: float
    connect_deadline: float
    _state: SessionState = field(default=SessionState.CONNECTING, init=False)
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

    @property
    def state(self) -> SessionState:
        return self._state

    def move_to(self, state: SessionState) -> None:
        """Move to ``state``; :class:`SessionStateError` if :data:`TRANSITIONS` has no such move."""
        if (self._state, state) not in TRANSITIONS:
            raise SessionStateError(self._state, state)
        self._state = state

    @property
    def is_live(self) -> bool:
        """Connecting or up, not probed in vain: new streams to its key and protocol go on it."""
        return self._state in LIVE_STATES

    @property
    def is_up(self) -> bool:
        """Established and not closed (it may be probed or set aside)."""
        return self._state in UP_STATES

    @property
    def is_closed(self) -> bool:
        return self._state in CLOSED_STATES

    @property
    def was_established(self) -> bool:
        """It came up, whether or not it has closed since."""
        return self._state not in (SessionState.CONNECTING, SessionState.FAILED)

    @property
    def address(self) -> tuple[str, int]:
        return (self.key.hex(), 0)
