"""Requests to relays on session streams kept open for the next request.

The relay protocol serves one request after another on a stream until the
asker finishes it (:meth:`relay.service.RelayService.handle`), so a node that
talks to a relay often (depositing for an offline peer, fetching its
mailboxes) need not open and close a stream for every request: a stream that
brought an answer is kept, idle, for the next request to that relay.  Opening
and finishing a QUIC stream costs both sides about as much as the request.

A kept stream is used again only while it has been idle less than
:data:`STREAM_IDLE_S`, well inside the relay's own wait for the next request
(:data:`~relay.streams.REQUEST_TIMEOUT_S`), and only while its session would
take a new stream unprobed (:meth:`~router.sessions.runtime.Sessions.trusted`:
a session quiet for a while is probed before it is trusted, and a kept stream
must not skip that); at most :data:`IDLE_STREAMS_PER_RELAY` wait for each
relay, and the rest are ended.  If a kept stream turns out to be dead (its
session closed, or the relay ended it), the request is sent once more on a
fresh stream, within what is left of its time: every request of the protocol
may be repeated (a deposit names its envelope, and a relay answers a second
deposit of it ``ok``, saying it was not stored again).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from relay.errors import SessionLost
from relay.messages import A, Refused, Request
from relay.protocol import ALPN, ProtocolError
from relay.streams import asking, exchange
from router.sessions.runtime import Sessions
from router.sessions.stream import SessionStream

IDLE_STREAMS_PER_RELAY = 16
STREAM_IDLE_S = 10.0


class RelayCalls:
    """One node's requests to relays, on streams it keeps between requests."""

    def __init__(self, sessions: Sessions, clock: Callable[[], float] = time.monotonic) -> None:
        self.sessions = sessions
        self.clock = clock
        self._idle: dict[bytes, list[tuple[SessionStream, float]]] = {}
        self.streams_opened = 0
        self.streams_reused = 0

    async def call(self, relay: bytes, request: Request[A], timeout: float) -> A | Refused:
        """The relay's answer to ``request`` (which may be an error answer);
        :class:`~relay.errors.CallError` or :class:`ProtocolError` if there is none."""
        started = self.clock()
        stream = self._take(relay)
        if stream is not None:
            self.streams_reused += 1
            try:
                return await self._exchange(relay, stream, request, timeout)
            except (SessionLost, ProtocolError):
                pass  # the kept stream was dead: once more, on a fresh one (not after a timeout)
            timeout = max(0.0, timeout - (self.clock() - started))
        with asking(timeout):
            stream = await self.sessions.open_stream(relay, ALPN, timeout)
        self.streams_opened += 1
        return await self._exchange(relay, stream, request, timeout)

    async def _exchange(
        self, relay: bytes, stream: SessionStream, request: Request[A], timeout: float
    ) -> A | Refused:
        answered = False
        try:
            answer = await exchange(stream, request, timeout)
            answered = True
            return answer
        finally:
            if answered:
                self._keep(relay, stream)
            elif not stream.done:
                stream.abort()

    def _take(self, relay: bytes) -> SessionStream | None:
        idle = self._idle.get(relay)
        now = self.clock()
        while idle:
            stream, since = idle.pop()
            if not stream.done and now - since < STREAM_IDLE_S and self.sessions.trusted(stream.session):
                return stream
            _finish(stream)
        return None

    def _keep(self, relay: bytes, stream: SessionStream) -> None:
        now = self.clock()
        # Streams that have waited too long, for any relay, go now: they would not
        # be used, and each holds its session.
        for key in list(self._idle):
            waiting = self._idle[key]
            while waiting and (waiting[0][0].done or now - waiting[0][1] >= STREAM_IDLE_S):
                _finish(waiting.pop(0)[0])
            if not waiting:
                del self._idle[key]
        idle = self._idle.setdefault(relay, [])
        if stream.done or len(idle) >= IDLE_STREAMS_PER_RELAY:
            _finish(stream)
        else:
            idle.append((stream, now))

    def idle_streams(self) -> int:
        return sum(len(idle) for idle in self._idle.values())

    def close(self) -> None:
        """Finish every kept stream."""
        for idle in self._idle.values():
            for stream, _ in idle:
                _finish(stream)
        self._idle.clear()


def _finish(stream: SessionStream) -> None:
    """End a kept stream both ways, as a single request's stream is ended once
    answered: the relay, waiting for the next request, stops."""
    if not stream.done:
        stream.abort()
