"""The WebSocket carrier: what it sends, message by message."""

from __future__ import annotations

import asyncio
import os
from typing import cast

from router.links.peer import PeerLink
from router.links.websocket import SEND_MESSAGE_BYTES, Connection, WebSocketTransport


class Link:
    """What the transport tells its link: only pauses and resumes, here."""

    def __init__(self) -> None:
        self.paused = 0

    def pause_writing(self) -> None:
        self.paused += 1

    def resume_writing(self) -> None:
        pass


class Sent:
    """A connection that keeps the messages sent on it."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def send(self, message: bytes) -> None:
        self.messages.append(message)


def test_a_large_write_goes_as_messages_the_reference_reads() -> None:
    """A flush of up to 256 KiB is cut into messages of at most 32 KiB (the
    reference's WebSocket library closes a connection on a larger one); the
    bytes arrive whole and in order."""

    async def main() -> None:
        connection = Sent()
        transport = WebSocketTransport(cast(Connection, connection), cast(PeerLink, Link()))
        writer = asyncio.get_running_loop().create_task(transport._write_loop())
        data = os.urandom(256 * 1024 + 17)
        transport.write(data)
        transport.write(b"small")
        for _ in range(100):
            await asyncio.sleep(0)
        transport._closing = True
        transport._wake_writer.set()
        await writer
        assert b"".join(connection.messages) == data + b"small"
        assert max(len(m) for m in connection.messages) == SEND_MESSAGE_BYTES == 32768
        assert len(connection.messages) == 9 + 1

    asyncio.run(main())
