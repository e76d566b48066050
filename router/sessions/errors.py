"""The sessions layer's errors, as the layers above see them."""

from __future__ import annotations


class SessionError(Exception):
    """A session could not be opened, or a stream broke."""


class SessionTimeout(SessionError):
    """No session came up in time: the node is offline or unreachable."""


__all__ = ["SessionError", "SessionTimeout"]
