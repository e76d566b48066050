"""Sessions for the rest of the project: open a stream to (key, protocol), or
accept the streams that arrive for a protocol.

The runtime feeds the sans-I/O :class:`~router.sessions.endpoint.Endpoint` with
the overlay datagrams the node delivers, sends what it returns as overlay
traffic (once per event-loop turn, however many inputs there were), and arms a
single timer.  Streams are byte pipes with backpressure both ways: a writer
waits in :meth:`SessionStream.drain` while too much is unsent, and a reader that
stops reading stops the peer by QUIC flow control.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING

from router.logs import get_logger
from router.quic.errors import QuicEngineError
from router.sessions.codes import UNREACHABLE, StreamResetCode
from router.sessions.errors import SessionError, SessionTimeout
from router.sessions.events import (
    SessionAlive,
    SessionDown,
    SessionSetAside,
    SessionUp,
    StreamAborted,
    StreamData,
)
from router.sessions.session import Limits, Session, SessionState
from router.sessions.stream import SessionStream
from router.tasks import stop_tasks
from router.wire.keys import Identity

if TYPE_CHECKING:
    from router.sessions.endpoint import Endpoint

log = get_logger("pinewood.sessions")

REFUSAL_LOG_INTERVAL_S = 60.0
"""Streams refused for want of a listener are logged once per protocol this often."""
WRITE_HIGH_WATER = 256 * 1024
"""Unsent bytes of one stream above which a writer's ``drain`` waits."""

StreamHandler = Callable[[SessionStream], Awaitable[None]]
SendDatagram = Callable[[bytes, bytes], None]


class Sessions:
    """The asyncio side of a node's sessions."""

    def __init__(
        self,
        identity: Identity,
        alpns: list[str],
        send_datagram: SendDatagram,
        limits: Limits | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.alpns = list(alpns)
        self.identity = identity
        self._limits = limits
        self._endpoint: Endpoint | None = None
        self._send_datagram = send_datagram
        self._streams: dict[tuple[Session, int], SessionStream] = {}
        self._handlers: dict[str, StreamHandler] = {}
        self._waiters: dict[Session, list[asyncio.Future[None]]] = {}
        self._flush_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._tasks: set[asyncio.Task[None]] = set()
        self.counters: Counter[str] = Counter()
        self.closing = False
        self._refusals_logged: dict[str, float] = {}

    @property
    def endpoint(self) -> Endpoint:
        """The sans-I/O endpoint, made on first use: the QUIC library is loaded
        (and checked) only by a node that opens or answers a session.
        :class:`~router.quic.errors.QuicEngineError` if it cannot serve them."""
        if self._endpoint is None:
            from router.sessions.endpoint import Endpoint  # noqa: PLC0415  (loads QUIC)

            self._endpoint = Endpoint(self.identity, self.alpns, self._limits)
        return self._endpoint

    @property
    def loaded(self) -> Endpoint | None:
        """The endpoint if a session was ever opened or answered, else None."""
        return self._endpoint

    @property
    def open_sessions(self) -> Collection[Session]:
        """Every session open or opening."""
        return self._endpoint.sessions if self._endpoint is not None else ()

    @property
    def drops(self) -> Counter[str]:
        """Datagrams the endpoint dropped, by reason."""
        return self._endpoint.drops if self._endpoint is not None else Counter()

    def load(self) -> None:
        """Make the endpoint now: a node whose configuration uses sessions finds
        a QUIC library it cannot use at start rather than at its first session."""
        _ = self.endpoint

    # ---------------------------------------------------------- the API

    def listen(self, alpn: str, handler: StreamHandler) -> None:
        """Call ``handler`` (as a task) for every stream a peer opens for ``alpn``."""
        if alpn not in self.alpns:
            raise ValueError(f"protocol {alpn!r} was not configured for sessions")
        self._handlers[alpn] = handler

    def trusted(self, session: Session) -> bool:
        """Whether a new request may go on ``session`` without a probe, as
        :meth:`open_stream` would send it: established (neither probed nor set
        aside) and heard from lately."""
        return session.state is SessionState.ESTABLISHED and not self.endpoint.needs_probe(
            session, self.loop.time()
        )

    async def open_stream(self, key: bytes, alpn: str, timeout: float | None = None) -> SessionStream:
        """A new stream to the node with ``key``, over a new or reused session.

        Raises :class:`SessionError` if no session is up within ``timeout``
        (the endpoint's connect timeout if None) or the other side refuses it.
        """
        if self.closing:
            raise SessionError("sessions are shutting down")
        try:
            endpoint = self.endpoint
        except QuicEngineError as exc:
            raise SessionError(f"sessions are unavailable: {exc}") from None
        limit = timeout if timeout is not None else endpoint.limits.connect_timeout_s
        deadline = self.loop.time() + limit
        for _attempt in range(3):
            now = self.loop.time()
            try:
                session = endpoint.connect(key, alpn, now)
            except ValueError as exc:
                raise SessionError(str(exc)) from None
            if endpoint.needs_probe(session, now):
                endpoint.probe(session, now)  # quiet for a while: is it still there?
            self._kick()
            if session.state in (SessionState.CONNECTING, SessionState.PROBING):
                # The handshake, or the probe, has yet to be answered.
                waiter: asyncio.Future[None] = self.loop.create_future()
                self._waiters.setdefault(session, []).append(waiter)
                try:
                    await asyncio.wait_for(waiter, max(0.0, deadline - now))
                except TimeoutError:
                    self.counters["session opens timed out"] += 1
                    raise SessionTimeout(
                        f"no session with {key.hex()} within {limit:g} s (unreachable or offline)"
                    ) from None
            if session.state in (SessionState.CLOSED, SessionState.SET_ASIDE):
                continue  # it went away under us, or did not answer its probe: a fresh one
            if session.state is SessionState.FAILED:
                if session.close_reason == UNREACHABLE:
                    raise SessionTimeout(f"no session with {key.hex()}: {UNREACHABLE}")
                raise SessionError(f"session with {key.hex()} failed: {session.close_reason}")
            stream_id = endpoint.open_stream(session, self.loop.time())
            stream = SessionStream(self, session, stream_id)
            self._streams[(session, stream_id)] = stream
            self._kick()
            return stream
        raise SessionError(f"session with {key.hex()} closed while opening a stream")

    def datagram(self, source: bytes, payload: bytes) -> None:
        """An overlay datagram for the sessions layer arrived from ``source``."""
        try:
            endpoint = self.endpoint
        except QuicEngineError as exc:
            self.counters["datagrams dropped: sessions unavailable"] += 1
            if self.counters["datagrams dropped: sessions unavailable"] == 1:
                log.error("sessions are unavailable: datagrams for them are dropped", reason=str(exc))
            return
        endpoint.datagram_received(source, payload, self.loop.time())
        self._kick()

    async def close(self) -> None:
        """Close every session (the peers are told) and stop."""
        self.closing = True
        if self._endpoint is None:
            return  # never used: nothing to close
        self._endpoint.close_all(self.loop.time())
        self._flush()
        await stop_tasks(list(self._tasks))
        if self._timer is not None:
            self._timer.cancel()

    # ---------------------------------------------------------- stream plumbing

    # (the StreamCarrier protocol: what a SessionStream asks of its runtime)

    def stream_send(self, stream: SessionStream, data: bytes, end: bool) -> bool:
        if not self.endpoint.send(stream.session, stream.stream_id, data, end):
            return False
        if self._unsent(stream) > WRITE_HIGH_WATER:
            stream.pause_writing()
        self._kick()
        return True

    def stream_consumed(self, stream: SessionStream, count: int) -> None:
        if (stream.session, stream.stream_id) not in self._streams:
            return  # already forgotten (reset or finished): no credit to give
        self.endpoint.consumed(stream.session, stream.stream_id, count)
        self._kick()

    def stream_abort(self, stream: SessionStream, error_code: int) -> None:
        self.endpoint.abort_stream(stream.session, stream.stream_id, error_code)
        self._streams.pop((stream.session, stream.stream_id), None)
        self._kick()

    def stream_finished(self, stream: SessionStream) -> None:
        if stream.done and self._streams.pop((stream.session, stream.stream_id), None) is not None:
            self.endpoint.stream_done(stream.session, stream.stream_id)

    def _unsent(self, stream: SessionStream) -> int:
        return self.endpoint.unsent(stream.session, stream.stream_id)

    # ---------------------------------------------------------- the loop side

    def _kick(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        now = self.loop.time()
        for key, payload in self.endpoint.datagrams_to_send(now):
            self._send_datagram(key, payload)
        self._handle_events()
        for stream in self._streams.values():
            if stream.writing_paused and self._unsent(stream) <= WRITE_HIGH_WATER // 4:
                stream.resume_writing()
        self._arm_timer()

    def _handle_events(self) -> None:
        for event in self.endpoint.events():
            if isinstance(event, StreamData):
                stream = self._streams.get((event.session, event.stream_id))
                if stream is None:
                    if event.session.outbound and not event.stream_id & 1:
                        continue  # late data for one of ours that is finished
                    stream = self._accept_stream(event.session, event.stream_id)
                    if stream is None:
                        continue
                stream.data_received(event.data, event.end)
            elif isinstance(event, StreamAborted):
                stream = self._streams.pop((event.session, event.stream_id), None)
                if stream is not None:
                    # Our half goes too: reset it, so that QUIC can forget the stream.
                    self.endpoint.abort_stream(event.session, event.stream_id, StreamResetCode.ABORTED)
                    stream.connection_lost(
                        f"stream reset by the other node (code {event.error_code})", event.error_code
                    )
            elif isinstance(event, (SessionUp, SessionAlive, SessionSetAside)):
                if isinstance(event, SessionUp):
                    self.counters["sessions established"] += 1
                for waiter in self._waiters.pop(event.session, []):
                    if not waiter.done():
                        waiter.set_result(None)
            elif isinstance(event, SessionDown):
                self.counters["sessions closed"] += 1
                for waiter in self._waiters.pop(event.session, []):
                    if not waiter.done():
                        waiter.set_result(None)
                for (session, stream_id), stream in list(self._streams.items()):
                    if session is event.session:
                        stream.connection_lost(f"session closed: {event.reason}")
                        del self._streams[(session, stream_id)]

    def _accept_stream(self, session: Session, stream_id: int) -> SessionStream | None:
        handler = self._handlers.get(session.alpn)
        if handler is None or self.closing:
            self.counters["streams refused (no listener)"] += 1
            # REFUSED means nothing here serves the protocol; a node on its way
            # down only gives up.
            code = StreamResetCode.ABORTED if self.closing else StreamResetCode.REFUSED
            self.endpoint.abort_stream(session, stream_id, code)
            now = self.loop.time()
            if (
                handler is None
                and self._refusals_logged.get(session.alpn, -REFUSAL_LOG_INTERVAL_S) + REFUSAL_LOG_INTERVAL_S
                <= now
            ):
                self._refusals_logged[session.alpn] = now
                log.info(
                    "refused a session stream: nothing here serves its protocol",
                    protocol=session.alpn,
                    peer=session.key.hex(),
                    refused_so_far=self.counters["streams refused (no listener)"],
                )
            return None
        stream = SessionStream(self, session, stream_id)
        self._streams[(session, stream_id)] = stream
        task = self.loop.create_task(self._run_handler(handler, stream))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return stream

    async def _run_handler(self, handler: StreamHandler, stream: SessionStream) -> None:
        try:
            await handler(stream)
        except SessionError:
            self.counters["streams broken"] += 1
        finally:
            if not stream.done:
                stream.abort()

    def _arm_timer(self) -> None:
        deadline = self.endpoint.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline != float("inf"):
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        self.endpoint.handle_timer(self.loop.time())
        self._flush()
