"""WebSocket peerings (``ws://``), as the reference speaks them.

Binary messages carry the same byte stream as TCP (handshake, then frames);
message boundaries mean nothing and the reader concatenates.  The stream is
handed to the same :class:`~router.links.peer.PeerLink` protocol through a small
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

from router.links.adapter import CarrierTransport
from router.links.peer import PeerLink
from router.links.tcp_socket import tcp_rtt_s

MAX_MESSAGE_BYTES = 1 << 20
"""The largest message accepted from a peer (a frame is at most 64 KiB)."""
SEND_MESSAGE_BYTES = 32 * 1024
"""The largest message sent: the reference's WebSocket library (nhooyr.io/websocket)
closes a connection on a message past its default read limit of 32768 bytes."""

Connection = ServerConnection | ClientConnection


class WebSocketTransport(CarrierTransport):
    """Enough of an asyncio transport for :class:`PeerLink` over a WebSocket."""

    def __init__(self, connection: Connection, protocol: PeerLink) -> None:
        super().__init__(protocol)
        self.connection = connection
        self.protocol = protocol
        self._outgoing: deque[bytes] = deque()
        self._unsent = 0
        self._can_read = asyncio.Event()
        self._can_read.set()
        self._wake_writer = asyncio.Event()

    def peername(self) -> Any:
        return self.connection.remote_address

    def rtt_s(self) -> float | None:
        return tcp_rtt_s(self.stream_socket())

    def stream_socket(self) -> Any:
        return self.connection.transport.get_extra_info("socket")

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing:
            return
        data = bytes(data)
        # Messages carry a byte stream, their boundaries mean nothing: cut what
        # a flush writes into messages the reference's WebSocket library reads.
        for start in range(0, len(data), SEND_MESSAGE_BYTES):
            self._outgoing.append(data[start : start + SEND_MESSAGE_BYTES])
        self._unsent += len(data)
        self._wake_writer.set()
        self.note_unsent(self._unsent)

    def pause_reading(self) -> None:
        self._can_read.clear()

    def resume_reading(self) -> None:
        self._can_read.set()

    def is_reading(self) -> bool:
        return self._can_read.is_set()

    def abort(self) -> None:
        if not self._closing:
            self._closing = True
            self._wake_writer.set()
            self._can_read.set()
            asyncio.get_running_loop().create_task(self.connection.close())

    async def run(self) -> None:
        """Pump messages both ways until either side closes; then tell the protocol."""
        self.protocol.connection_made(self)  # which tunes the socket under us
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
                self.note_unsent(self._unsent)
