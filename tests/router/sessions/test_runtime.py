"""The asyncio sessions runtime: two nodes' sessions joined in one event loop."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from router.quic.errors import QuicEngineError
from router.sessions import endpoint as endpoint_module
from router.sessions.codes import StreamResetCode
from router.sessions.errors import SessionError, SessionTimeout, StreamReset
from router.sessions.runtime import Sessions
from router.sessions.session import Limits
from router.sessions.stream import SessionStream
from router.wire.keys import Identity


def pair(limits: Limits | None = None) -> tuple[Sessions, Sessions, set[bytes]]:
    """Two sessions runtimes whose datagrams reach each other (unless ``offline``)."""
    ids = [Identity.generate() for _ in range(2)]
    offline: set[bytes] = set()
    runtimes: dict[bytes, Sessions] = {}

    def sender(source: bytes) -> object:
        def send(destination: bytes, payload: bytes) -> None:
            target = runtimes.get(destination)
            if target is not None and destination not in offline:
                asyncio.get_running_loop().call_soon(target.datagram, source, payload)

        return send

    for identity in ids:
        key = bytes(identity.public_key)
        runtimes[key] = Sessions(identity, ["matrix"], sender(key), limits)  # type: ignore[arg-type]
    a, b = runtimes.values()
    return a, b, offline


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """Run an async test in a fresh event loop, with a deadline."""

    @functools.wraps(test)
    def wrapper() -> None:
        asyncio.run(asyncio.wait_for(test(), 60))

    return wrapper


async def read_all(stream: SessionStream) -> bytes:
    """Everything until the peer finishes (a stream may deliver it in any number of pieces)."""
    parts = []
    while chunk := await stream.read():
        parts.append(chunk)
    return b"".join(parts)


def key_of(sessions: Sessions) -> bytes:
    return bytes(sessions.identity.public_key)


@run
async def test_stream_echo_both_ways() -> None:
    a, b, _ = pair()

    async def echo(stream: SessionStream) -> None:
        while data := await stream.read():
            stream.write(data[::-1])
            await stream.drain()
        stream.write_eof()

    b.listen("matrix", echo)
    stream = await a.open_stream(key_of(b), "matrix", timeout=5)
    payload = os.urandom(2_000_000)
    stream.write(payload)
    stream.write_eof()
    got = bytearray()
    while chunk := await stream.read():
        got += chunk
    assert len(got) == len(payload)
    assert stream.key == key_of(b) and stream.alpn == "matrix"
    await a.close()
    await b.close()


@run
async def test_the_endpoint_is_made_by_the_first_session() -> None:
    # A node that never opens or answers a session never loads QUIC.
    a, b, _ = pair()
    b.listen("matrix", read_all)  # type: ignore[arg-type]
    assert a.loaded is None and b.loaded is None
    assert a.open_sessions == () and not a.drops
    stream = await a.open_stream(key_of(b), "matrix", timeout=5)
    assert a.loaded is not None and b.loaded is not None  # b's by a's first datagram
    assert len(a.open_sessions) == 1 and len(b.open_sessions) == 1
    stream.write_eof()
    await a.close()
    await b.close()
    unused, _, _ = pair()
    await unused.close()
    assert unused.loaded is None


def test_a_quic_library_that_cannot_serve_fails_sessions_not_the_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken() -> None:
        raise QuicEngineError("aioquic 0.0 lacks something")

    monkeypatch.setattr(endpoint_module, "check_aioquic", broken)

    @run
    async def check() -> None:
        a, b, _ = pair()
        a.datagram(key_of(b), b"\x40" * 40)
        a.datagram(key_of(b), b"\x40" * 40)
        assert a.counters["datagrams dropped: sessions unavailable"] == 2 and a.loaded is None
        with pytest.raises(SessionError, match=r"sessions are unavailable: aioquic 0\.0 lacks something"):
            await a.open_stream(key_of(b), "matrix", timeout=1)
        await a.close()

    check()


@run
async def test_many_streams_share_one_session() -> None:
    a, b, _ = pair()

    async def answer(stream: SessionStream) -> None:
        request = await read_all(stream)
        stream.write(b"re:" + request)
        stream.write_eof()

    b.listen("matrix", answer)

    async def one(i: int) -> bytes:
        stream = await a.open_stream(key_of(b), "matrix", timeout=5)
        stream.write(str(i).encode())
        stream.write_eof()
        return await read_all(stream)

    answers = await asyncio.gather(*(one(i) for i in range(300)))
    assert answers == [b"re:" + str(i).encode() for i in range(300)]
    assert len(a.endpoint.sessions) == 1
    await a.close()
    await b.close()


@run
async def test_offline_key_times_out_with_a_clear_error() -> None:
    a, b, offline = pair(Limits(connect_timeout_s=0.5))
    offline.add(key_of(b))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(SessionTimeout, match=r"offline or unreachable|unreachable or offline"):
        await a.open_stream(key_of(b), "matrix")
    assert 0.4 <= loop.time() - started < 2.0
    await a.close()
    await b.close()


@run
async def test_stream_without_a_listener_is_refused() -> None:
    a, b, _ = pair()
    stream = await a.open_stream(key_of(b), "matrix", timeout=5)
    stream.write(b"anyone there?")
    # The reset that reaches the opener carries the code for a refused stream.
    with pytest.raises(
        StreamReset, match=rf"reset by the other node \(code {int(StreamResetCode.REFUSED)}\)"
    ) as info:
        await asyncio.wait_for(stream.read(), 5)
    assert info.value.code == StreamResetCode.REFUSED
    assert b.counters["streams refused (no listener)"] == 1
    await a.close()
    await b.close()


@run
async def test_writer_waits_while_the_reader_does_not_read() -> None:
    a, b, _ = pair()
    accepted: asyncio.Future[SessionStream] = asyncio.get_running_loop().create_future()

    async def hold(stream: SessionStream) -> None:
        accepted.set_result(stream)
        await asyncio.sleep(3600)

    b.listen("matrix", hold)
    stream = await a.open_stream(key_of(b), "matrix", timeout=5)
    chunk = os.urandom(64 * 1024)
    written = 0
    with pytest.raises(TimeoutError):
        while True:
            stream.write(chunk)
            written += len(chunk)
            await asyncio.wait_for(stream.drain(), 1.0)
    # The writer was held back after about one stream window plus its own buffer.
    assert written < 4 * 1024 * 1024
    peer = await accepted
    assert peer.bytes_in <= 1024 * 1024 + 64 * 1024
    await a.close()
    await b.close()
