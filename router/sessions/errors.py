"""The sessions layer's errors, as the layers above see them."""

from __future__ import annotations


class SessionError(Exception):
    """A session could not be opened, or a stream broke."""


class SessionTimeout(SessionError):
    """No session came up in time: the node is offline or unreachable."""


class StreamReset(SessionError):
    """The other side reset the stream; ``code`` is the application error code it gave."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


__all__ = ["SessionError", "SessionTimeout", "StreamReset"]
