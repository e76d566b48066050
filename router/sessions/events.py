"""What the endpoint reports to its runtime: sessions up, down, answering a
probe or set aside, and data or a reset on a stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from router.sessions.session import Session


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
