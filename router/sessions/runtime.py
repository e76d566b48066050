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
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any

from router.quic.engine import stream_buffered_bytes
from router.sessions.endpoint import (
    UNREACHABLE,
    Endpoint,
    Limits,
    Session,
    SessionDown,
    SessionUp,
    StreamAborted,
    StreamData,
    StreamResetCode,
)
from router.sessions.errors import SessionError, SessionTimeout
from router.tasks import stop_tasks
from router.wire.keys import Identity

WRITE_HIGH_WATER = 256 * 1024
"""Unsent bytes of one stream above which a writer's ``drain`` waits."""

StreamHandler = Callable[["SessionStream"], Awaitable[None]]
SendDatagram = Callable[[bytes, bytes], None]


class SessionStream:
    """One bidirectional QUIC stream of a session: bytes in order, both ways."""

    def __init__(self, sessions: Sessions, session: Session, stream_id: int) -> None:
        self._sessions = sessions
        self.session = session
        self.stream_id = stream_id
        self._chunks: deque[bytes] = deque()
        self._eof = False
        self._error: str | None = None
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._write_closed = False
        self._read_done = False
        self.bytes_in = 0
        self.bytes_out = 0

    @property
    def key(self) -> bytes:
        return self.session.key

    @property
    def alpn(self) -> str:
        return self.session.alpn

    # ---------------------------------------------------------- reading

    async def read(self, limit: int = 65536) -> bytes:
        """Up to ``limit`` bytes; b"" once the peer has finished sending."""
        while not self._chunks:
            if self._error is not None:
                raise SessionError(self._error)
            if self._eof:
                self._finish_reading()
                return b""
            self._readable.clear()
            await self._readable.wait()
        chunk = self._chunks.popleft()
        if len(chunk) > limit:
            self._chunks.appendleft(chunk[limit:])
            chunk = chunk[:limit]
        self._sessions._consumed(self, len(chunk))
        return chunk

    async def readexactly(self, count: int) -> bytes:
        parts: list[bytes] = []
        while count:
            chunk = await self.read(count)
            if not chunk:
                raise SessionError("stream ended early")
            parts.append(chunk)
            count -= len(chunk)
        return b"".join(parts)

    def _feed(self, data: bytes, end: bool) -> None:
        if data:
            self._chunks.append(data)
            self.bytes_in += len(data)
        if end:
            self._eof = True
        self._readable.set()

    def _finish_reading(self) -> None:
        if not self._read_done:
            self._read_done = True
            self._sessions._maybe_done(self)

    # ---------------------------------------------------------- writing

    def write(self, data: bytes) -> None:
        if self._write_closed:
            raise SessionError("stream closed for writing")
        if self._error is not None:
            raise SessionError(self._error)
        if data:
            self.bytes_out += len(data)
            self._sessions._send(self, data, False)

    async def drain(self) -> None:
        while not self._writable.is_set():
            if self._error is not None:
                raise SessionError(self._error)
            await self._writable.wait()
        if self._error is not None:
            raise SessionError(self._error)

    def write_eof(self) -> None:
        """Finish our side of the stream (the peer reads b"" after the rest)."""
        if not self._write_closed and self._error is None:
            self._write_closed = True
            self._sessions._send(self, b"", True)
            self._sessions._maybe_done(self)

    def abort(self, error_code: int = StreamResetCode.ABORTED) -> None:
        """Break the stream both ways at once."""
        if self._error is None:
            self._fail("stream aborted")
            self._sessions._abort(self, error_code)

    def _fail(self, reason: str) -> None:
        if self._error is None:
            self._error = reason
        self._readable.set()
        self._writable.set()

    @property
    def done(self) -> bool:
        return self._error is not None or (self._write_closed and self._read_done)


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
        self.endpoint = Endpoint(identity, alpns, limits)
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

    # ---------------------------------------------------------- the API

    def listen(self, alpn: str, handler: StreamHandler) -> None:
        """Call ``handler`` (as a task) for every stream a peer opens for ``alpn``."""
        if alpn not in self.endpoint.alpns:
            raise ValueError(f"protocol {alpn!r} was not configured for sessions")
        self._handlers[alpn] = handler

    async def open_stream(self, key: bytes, alpn: str, timeout: float | None = None) -> SessionStream:
        """A new stream to the node with ``key``, over a new or reused session.

        Raises :class:`SessionError` if no session is up within ``timeout``
        (the endpoint's connect timeout if None) or the other side refuses it.
        """
        if self.closing:
            raise SessionError("sessions are shutting down")
        for _attempt in range(2):
            try:
                session = self.endpoint.connect(key, alpn, self.loop.time())
            except ValueError as exc:
                raise SessionError(str(exc)) from None
            self._kick()
            if not session.established:
                waiter: asyncio.Future[None] = self.loop.create_future()
                self._waiters.setdefault(session, []).append(waiter)
                limit = timeout if timeout is not None else self.endpoint.limits.connect_timeout_s
                try:
                    await asyncio.wait_for(waiter, limit)
                except TimeoutError:
                    self.counters["session opens timed out"] += 1
                    raise SessionTimeout(
                        f"no session with {key.hex()} within {limit:g} s (unreachable or offline)"
                    ) from None
            if session.closed:
                if session.established:
                    continue  # it went away under us: one fresh attempt
                if session.close_reason == UNREACHABLE:
                    raise SessionTimeout(f"no session with {key.hex()}: {UNREACHABLE}")
                raise SessionError(f"session with {key.hex()} failed: {session.close_reason}")
            stream_id = self.endpoint.open_stream(session, self.loop.time())
            stream = SessionStream(self, session, stream_id)
            self._streams[(session, stream_id)] = stream
            self._kick()
            return stream
        raise SessionError(f"session with {key.hex()} closed while opening a stream")

    def datagram(self, source: bytes, payload: bytes) -> None:
        """An overlay datagram for the sessions layer arrived from ``source``."""
        self.endpoint.datagram_received(source, payload, self.loop.time())
        self._kick()

    def session_list(self) -> list[dict[str, Any]]:
        out = []
        for session in self.endpoint.sessions:
            out.append(
                {
                    "key": session.key.hex(),
                    "protocol": session.alpn,
                    "direction": "outbound" if session.outbound else "inbound",
                    "established": session.established,
                    "closing": session.closed,
                    "streams": len(session.streams),
                    "bytes_sent": session.bytes_sent,
                    "bytes_received": session.bytes_received,
                    "rtt_ms": round(session.rtt_s * 1000, 2) if session.rtt_s is not None else None,
                }
            )
        return out

    async def close(self) -> None:
        """Close every session (the peers are told) and stop."""
        self.closing = True
        self.endpoint.close_all(self.loop.time())
        self._flush()
        await stop_tasks(list(self._tasks))
        if self._timer is not None:
            self._timer.cancel()

    # ---------------------------------------------------------- stream plumbing

    def _send(self, stream: SessionStream, data: bytes, end: bool) -> None:
        self.endpoint.send(stream.session, stream.stream_id, data, end)
        if self._unsent(stream) > WRITE_HIGH_WATER:
            stream._writable.clear()
        self._kick()

    def _consumed(self, stream: SessionStream, count: int) -> None:
        self.endpoint.consumed(stream.session, stream.stream_id, count)
        self._kick()

    def _abort(self, stream: SessionStream, error_code: int) -> None:
        self.endpoint.abort_stream(stream.session, stream.stream_id, error_code)
        self._streams.pop((stream.session, stream.stream_id), None)
        self._kick()

    def _maybe_done(self, stream: SessionStream) -> None:
        if stream.done and self._streams.pop((stream.session, stream.stream_id), None) is not None:
            self.endpoint.stream_done(stream.session, stream.stream_id)

    def _unsent(self, stream: SessionStream) -> int:
        return stream_buffered_bytes(stream.session.connection, stream.stream_id)

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
            if not stream._writable.is_set() and self._unsent(stream) <= WRITE_HIGH_WATER // 4:
                stream._writable.set()
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
                stream._feed(event.data, event.end)
            elif isinstance(event, StreamAborted):
                stream = self._streams.pop((event.session, event.stream_id), None)
                if stream is not None:
                    stream._fail(f"stream reset by the peer ({event.error_code})")
                    self.endpoint.stream_done(event.session, event.stream_id)
            elif isinstance(event, SessionUp):
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
                        stream._fail(f"session closed: {event.reason}")
                        del self._streams[(session, stream_id)]

    def _accept_stream(self, session: Session, stream_id: int) -> SessionStream | None:
        handler = self._handlers.get(session.alpn)
        if handler is None or self.closing:
            self.counters["streams refused (no listener)"] += 1
            self.endpoint.abort_stream(session, stream_id, StreamResetCode.REFUSED)
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
