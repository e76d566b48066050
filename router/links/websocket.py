"""WebSocket peerings (``ws://``), as the reference speaks them.

Binary messages carry the same byte stream as TCP (handshake, then frames);
message boundaries mean nothing and the reader concatenates.  The stream is
handed to the same :class:`~router.links.tcp.PeerLink` protocol through a small
adapter that looks like an asyncio transport: writes become binary messages
(one per flush, so batching is kept), with pause/resume of writing driven by
how much is still unsent, and reading pauses between messages.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from router.links.tcp import HIGH_WATER_BYTES, PeerLink

MAX_MESSAGE_BYTES = 1 << 20
"""The largest message accepted from a peer (a frame is at most 64 KiB)."""

Connection = ServerConnection | ClientConnection


class WebSocketTransport(asyncio.Transport):
    """Enough of an asyncio transport for :class:`PeerLink` over a WebSocket."""

    def __init__(self, connection: Connection, protocol: PeerLink) -> None:
        super().__init__()
        self.connection = connection
        self.protocol = protocol
        self._outgoing: deque[bytes] = deque()
        self._unsent = 0
        self._writing_paused = False
        self._can_read = asyncio.Event()
        self._can_read.set()
        self._wake_writer = asyncio.Event()
        self._closing = False
        self.high_water = HIGH_WATER_BYTES

    # the parts of asyncio.Transport PeerLink uses
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self.connection.remote_address
        return default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is not None:
            self.high_water = high

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing:
            return
        self._outgoing.append(bytes(data))
        self._unsent += len(data)
        self._wake_writer.set()
        if not self._writing_paused and self._unsent > self.high_water:
            self._writing_paused = True
            self.protocol.pause_writing()

    def pause_reading(self) -> None:
        self._can_read.clear()

    def resume_reading(self) -> None:
        self._can_read.set()

    def is_reading(self) -> bool:
        return self._can_read.is_set()

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self.abort()

    def abort(self) -> None:
        if not self._closing:
            self._closing = True
            self._wake_writer.set()
            self._can_read.set()
            asyncio.get_running_loop().create_task(self.connection.close())

    async def run(self) -> None:
        """Pump messages both ways until either side closes; then tell the protocol."""
        self.protocol.connection_made(self)
        writer = asyncio.get_running_loop().create_task(self._write_loop())
        error: Exception | None = None
        try:
            while not self._closing:
                await self._can_read.wait()
                message = await self.connection.recv()
                if isinstance(message, str):
                    message = message.encode()
                self.protocol.data_received(message)
        except ConnectionClosed:
            pass
        except Exception as exc:  # surfaced as the close reason, never raised out of the link
            error = exc
        finally:
            self._closing = True
            self._wake_writer.set()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await writer
            with contextlib.suppress(Exception):
                await self.connection.close()
            self.protocol.connection_lost(error)

    async def _write_loop(self) -> None:
        while not self._closing:
            await self._wake_writer.wait()
            self._wake_writer.clear()
            while self._outgoing and not self._closing:
                data = self._outgoing.popleft()
                await self.connection.send(data)
                self._unsent -= len(data)
                if self._writing_paused and self._unsent <= self.high_water // 4:
                    self._writing_paused = False
                    self.protocol.resume_writing()
