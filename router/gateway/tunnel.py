"""Byte pipes for the gateway: TLS answered in memory, and two-way copying.

The gateway answers a homeserver's TLS inside a CONNECT or SOCKS5 tunnel after
it has already read from the socket (to parse the request, and to see whether
the tunnel starts with a TLS record at all), so it runs TLS on memory buffers
(``ssl.MemoryBIO``) over the plain stream rather than upgrading the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from typing import Protocol

from router.gateway.errors import GatewayError
from router.sessions.errors import SessionError
from router.sessions.stream import SessionStream

CHUNK = 65536
TLS_HANDSHAKE_RECORD = 0x16


class TunnelError(GatewayError):
    """A tunnel broke: TLS failed, a side went away, or it sat idle too long."""


class IdleTimeout(TunnelError):
    """Nothing moved either way for the idle timeout."""


class NoAnswer(TunnelError):
    """The far side broke (``cause``) before it sent a byte back; the near side
    is left open, so that it can still be told why."""

    def __init__(self, cause: Exception, sent: int) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.sent = sent


class ByteSide(Protocol):
    """One end of a pipe: read (b"" at the end), write, finish writing, abort."""

    async def read(self) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    async def finish(self) -> None: ...

    def abort(self) -> None: ...


class PlainSide:
    """A TCP stream, with bytes already read from it put back in front."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, prefix: bytes = b""
    ) -> None:
        self.reader = reader
        self.writer = writer
        self._prefix = prefix
        self.answer = b""
        """What the proxy sends once the tunnel is open (its dialect's success reply)."""

    async def read(self) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        return await self.reader.read(CHUNK)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def finish(self) -> None:
        if self.writer.can_write_eof():
            with contextlib.suppress(OSError, RuntimeError):
                self.writer.write_eof()

    def abort(self) -> None:
        self.writer.transport.abort()


class PrefixedSide:
    """Another side, with bytes already read from it put back in front."""

    def __init__(self, inner: ByteSide, prefix: bytes) -> None:
        self.inner = inner
        self._prefix = prefix

    async def read(self) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        return await self.inner.read()

    async def write(self, data: bytes) -> None:
        await self.inner.write(data)

    async def finish(self) -> None:
        await self.inner.finish()

    def abort(self) -> None:
        self.inner.abort()


class TlsServerSide:
    """The server side of TLS over a plain stream, in memory."""

    def __init__(self, plain: PlainSide, context: ssl.SSLContext) -> None:
        self.plain = plain
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._in, self._out, server_side=True)

    async def _pump_out(self) -> None:
        data = self._out.read()
        if data:
            await self.plain.write(data)

    async def _pump_in(self) -> bool:
        data = await self.plain.read()
        if not data:
            self._in.write_eof()
            return False
        self._in.write(data)
        return True

    async def handshake(self) -> None:
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._pump_out()
                if not await self._pump_in():
                    raise TunnelError("the client closed the tunnel during the TLS handshake") from None
            except ssl.SSLError as exc:
                with contextlib.suppress(OSError, ConnectionError):
                    await self._pump_out()  # the alert, so the client learns why
                raise TunnelError(f"TLS handshake with the homeserver failed: {exc.reason}") from None
        await self._pump_out()

    async def read(self) -> bytes:
        while True:
            try:
                return self._tls.read(CHUNK)
            except ssl.SSLWantReadError:
                await self._pump_out()
                if not await self._pump_in():
                    return b""  # ended without close_notify: treated as the end
            except ssl.SSLZeroReturnError:
                return b""
            except ssl.SSLError as exc:
                raise TunnelError(f"TLS error from the homeserver: {exc.reason}") from None

    async def write(self, data: bytes) -> None:
        self._tls.write(data)
        await self._pump_out()

    async def finish(self) -> None:
        with contextlib.suppress(ssl.SSLError):
            self._tls.unwrap()
        with contextlib.suppress(OSError, ConnectionError):
            await self._pump_out()
        await self.plain.finish()

    def abort(self) -> None:
        self.plain.abort()


class StreamSide:
    """A session stream as a pipe end."""

    def __init__(self, stream: SessionStream) -> None:
        self.stream = stream

    async def read(self) -> bytes:
        return await self.stream.read(CHUNK)

    async def write(self, data: bytes) -> None:
        self.stream.write(data)
        await self.stream.drain()

    async def finish(self) -> None:
        self.stream.write_eof()

    def abort(self) -> None:
        self.stream.abort()


async def pipe(a: ByteSide, b: ByteSide, idle_timeout: float, spare_a: bool = False) -> tuple[int, int]:
    """Copy both ways until both directions have ended; abort both if either
    breaks or nothing moves for ``idle_timeout`` seconds.  Returns bytes a→b, b→a.

    With ``spare_a``, if ``b`` (a session stream) breaks or stays silent before
    sending anything back, only ``b`` is aborted and :class:`NoAnswer` raised,
    so the caller can still answer ``a``."""
    moved = [0, 0]
    last = [time.monotonic()]

    async def copy(source: ByteSide, sink: ByteSide, index: int) -> None:
        while True:
            data = await source.read()
            if not data:
                if spare_a and index == 1 and not moved[1]:
                    raise SessionError("the node ended the stream without answering")
                await sink.finish()
                return
            last[0] = time.monotonic()
            moved[index] += len(data)
            await sink.write(data)
            last[0] = time.monotonic()

    async def watchdog() -> None:
        while True:
            remaining = last[0] + idle_timeout - time.monotonic()
            if remaining <= 0:
                raise IdleTimeout(f"no bytes either way for {idle_timeout:g} s")
            await asyncio.sleep(remaining)

    tasks = [
        asyncio.ensure_future(copy(a, b, 0)),
        asyncio.ensure_future(copy(b, a, 1)),
    ]
    guard = asyncio.ensure_future(watchdog())
    try:
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending | {guard}, return_when=asyncio.FIRST_COMPLETED)
            pending.discard(guard)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
    except (TunnelError, SessionError, OSError, ConnectionError, ssl.SSLError) as exc:
        b.abort()
        if spare_a and moved[1] == 0 and isinstance(exc, (SessionError, IdleTimeout)):
            raise NoAnswer(exc, moved[0]) from None
        a.abort()
        raise
    finally:
        guard.cancel()
        for task in tasks:
            task.cancel()
        # Both directions often fail in the same turn: collect every outcome,
        # so that none is left unretrieved.
        await asyncio.gather(*tasks, guard, return_exceptions=True)
    return moved[0], moved[1]
