"""A session stream as its user sees it: a byte pipe both ways, with backpressure.

A stream knows nothing of QUIC: it asks its carrier (the sessions runtime) to
send, to credit what was read, to reset, and tells it when both directions are
finished; the carrier calls it back, as asyncio calls a protocol, when data
arrives, when the stream breaks, and to pause or resume writers.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

from router.sessions.codes import StreamResetCode
from router.sessions.errors import SessionError, StreamReset
from router.sessions.session import Session


class StreamCarrier(Protocol):
    """What a stream needs from the runtime that carries it."""

    def stream_send(self, stream: SessionStream, data: bytes, end: bool) -> bool:
        """Queue ``data`` (and the end of our side, if ``end``) for the peer;
        False if the stream can no longer send."""

    def stream_consumed(self, stream: SessionStream, count: int) -> None:
        """The reader took ``count`` bytes: the peer may send that much more."""

    def stream_abort(self, stream: SessionStream, error_code: int) -> None:
        """Reset the stream both ways with ``error_code``."""

    def stream_finished(self, stream: SessionStream) -> None:
        """A direction of the stream finished; forget it once :attr:`SessionStream.done`."""


class SessionStream:
    """One bidirectional QUIC stream of a session: bytes in order, both ways."""

    def __init__(self, carrier: StreamCarrier, session: Session, stream_id: int) -> None:
        self._carrier = carrier
        self.session = session
        self.stream_id = stream_id
        self._chunks: deque[bytes] = deque()
        self._eof = False
        self._error: str | None = None
        self._reset_code: int | None = None
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
                raise self._failure()
            if self._eof:
                self._finish_reading()
                return b""
            self._readable.clear()
            await self._readable.wait()
        chunk = self._chunks.popleft()
        if len(chunk) > limit:
            self._chunks.appendleft(chunk[limit:])
            chunk = chunk[:limit]
        self._carrier.stream_consumed(self, len(chunk))
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

    # ---------------------------------------------------------- the carrier's side

    def data_received(self, data: bytes, end: bool) -> None:
        """The peer sent ``data`` (and finished sending, if ``end``)."""
        if data:
            self._chunks.append(data)
            self.bytes_in += len(data)
        if end:
            self._eof = True
        self._readable.set()

    def _finish_reading(self) -> None:
        if not self._read_done:
            self._read_done = True
            self._carrier.stream_finished(self)

    # ---------------------------------------------------------- writing

    def write(self, data: bytes) -> None:
        if self._write_closed:
            raise SessionError("stream closed for writing")
        if self._error is not None:
            raise self._failure()
        if data:
            self.bytes_out += len(data)
            if not self._carrier.stream_send(self, data, False):
                # The other node stopped reading (STOP_SENDING): our half is over,
                # what it still sends can be read.
                self._write_closed = True
                self._writable.set()
                self._carrier.stream_finished(self)
                raise SessionError("the other node stopped reading this stream")

    async def drain(self) -> None:
        while not self._writable.is_set():
            if self._error is not None:
                raise self._failure()
            await self._writable.wait()
        if self._error is not None:
            raise self._failure()

    def write_eof(self) -> None:
        """Finish our side of the stream (the peer reads b"" after the rest)."""
        if not self._write_closed and self._error is None:
            self._write_closed = True
            self._carrier.stream_send(self, b"", True)
            self._carrier.stream_finished(self)

    def abort(self, error_code: int = StreamResetCode.ABORTED) -> None:
        """Break the stream both ways at once."""
        if self._error is None:
            self.connection_lost("stream aborted")
            self._carrier.stream_abort(self, error_code)

    def connection_lost(self, reason: str, reset_code: int | None = None) -> None:
        """The stream broke (reset by either side, or its session closed): every
        read, write and drain from now on raises :class:`SessionError` with
        ``reason`` (:class:`StreamReset`, if the other side reset it with ``reset_code``)."""
        if self._error is None:
            self._error = reason
            self._reset_code = reset_code
        self._readable.set()
        self._writable.set()

    def _failure(self) -> SessionError:
        reason = self._error or "stream broken"
        return SessionError(reason) if self._reset_code is None else StreamReset(reason, self._reset_code)

    @property
    def done(self) -> bool:
        return self._error is not None or (self._write_closed and self._read_done)

    def pause_writing(self) -> None:
        """Too much is unsent: :meth:`drain` waits until :meth:`resume_writing`."""
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    @property
    def writing_paused(self) -> bool:
        return not self._writable.is_set()
