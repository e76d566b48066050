"""The relay layer's errors: every error the relay modules raise derives from
:class:`RelayError`.  What enters the layer from elsewhere (the sessions
layer's errors and timeouts, msgpack's, sqlite's, the homeserver connection's
OSError) is turned into one of these where it enters."""

from __future__ import annotations


class RelayError(Exception):
    """A relay request, record, envelope or store operation failed; the message says why."""


class CallError(RelayError):
    """A request to a relay got no answer (an error answer is an answer, not this)."""


class SessionLost(CallError):
    """No session to the relay could be opened, or the stream the request went on broke."""


class CallTimeout(CallError):
    """The relay's answer did not come in time."""


class InboxError(RelayError):
    """The inbox's database cannot be opened, read or written."""


class RelayUnavailable(RelayError):
    """No relay would take the deposit (no record, no reachable relay, no intermediate)."""
