"""The sessions layer's errors, as the layers above see them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from router.sessions.session import SessionState


class SessionError(Exception):
    """A session could not be opened, or a stream broke."""


class SessionTimeout(SessionError):
    """No session came up in time: the node is offline or unreachable."""


class StreamReset(SessionError):
    """The other side reset the stream; ``code`` is the application error code it gave."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class SessionStateError(SessionError):
    """A session was asked to make a move its state does not allow: a fault of
    this node's own code, never of what the other side sent."""

    def __init__(self, current: SessionState, target: SessionState) -> None:
        super().__init__(f"a session that is {_name(current)} cannot become {_name(target)}")
        self.current = current
        self.target = target


def _name(state: SessionState) -> str:
    return state.name.lower().replace("_", " ")


__all__ = ["SessionError", "SessionStateError", "SessionTimeout", "StreamReset"]
