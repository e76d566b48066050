"""Replay to the homeserver: whatever keeps a relayed request from the
homeserver now (no connection, no answer in time, an answer that is not HTTP)
is the relay layer's HomeserverUnreachable, and the request waits for later."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest

from relay.errors import RelayError
from relay.homeserver import HomeserverUnreachable, Outcome, ReplayPolicy, deliver, replay
from router.matrix.names import server_name

SENDER = bytes(range(32))
BODY = b'{"pdus": []}'
REQUEST = (
    f"PUT /_matrix/federation/v1/send/1 HTTP/1.1\r\nHost: x\r\n"
    f'Authorization: X-Matrix origin="{server_name(SENDER)}",key="ed25519:a",sig="c2ln"\r\n'
    f"Content-Length: {len(BODY)}\r\n\r\n".encode()
    + BODY
)

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def answers_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"SPDY/9 ok\r\n\r\n")
    await writer.drain()


async def closes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")


async def stays_silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    await reader.read()  # until the asker gives up and closes


async def answers_200(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    await writer.drain()


class Homeserver:
    """A homeserver stand-in that serves each connection with ``serve``, then closes it."""

    def __init__(self, serve: Serve) -> None:
        self.serve = serve
        self.server: asyncio.Server | None = None
        self.handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return "127.0.0.1", self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            await self.serve(reader, writer)
        finally:
            writer.close()
            self.handlers.discard(task)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        while self.handlers:
            await asyncio.wait(self.handlers, timeout=5)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


CASES: list[tuple[str, Serve | None, str]] = [
    ("nothing listening", None, "refused|Connect call failed"),
    ("not HTTP", answers_garbage, "not HTTP"),
    ("closed unanswered", closes, "not HTTP: can't handle event type ConnectionClosed"),
    ("silent", stays_silent, "no answer within 0.3 s"),
]


@pytest.mark.parametrize(("serve", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_homeserver_that_cannot_take_a_request_now_is_unreachable(serve: Serve | None, reason: str) -> None:
    async def main() -> None:
        homeserver = Homeserver(serve) if serve else None
        address = await homeserver.start() if homeserver else ("127.0.0.1", closed_port())
        try:
            with pytest.raises(HomeserverUnreachable, match=reason) as caught:
                await replay(address, REQUEST, 0.3, SENDER, ReplayPolicy())
            assert isinstance(caught.value, RelayError)
            counters: Counter[str] = Counter()
            outcome = await deliver(address, REQUEST, 0.3, counters, SENDER, ReplayPolicy())
            assert outcome is Outcome.LATER
            assert counters == Counter({"homeserver unreachable": 1})
        finally:
            if homeserver is not None:
                await homeserver.close()

    asyncio.run(main())


def test_a_homeserver_that_answers_takes_the_request() -> None:
    async def main() -> None:
        homeserver = Homeserver(answers_200)
        address = await homeserver.start()
        try:
            assert await replay(address, REQUEST, 2.0, SENDER, ReplayPolicy()) == 200
            counters: Counter[str] = Counter()
            assert await deliver(address, REQUEST, 2.0, counters, SENDER, ReplayPolicy()) is Outcome.TAKEN
            assert not counters
        finally:
            await homeserver.close()

    asyncio.run(main())
