"""The outbound proxy's reading of requests: bounded reads driven by the
parsers, a refusal in the client's own dialect followed by a clean close, and
bytes sent right behind a request carried into its tunnel."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest

from router.gateway import outbound as outbound_module
from router.gateway.ca import LocalCA
from router.gateway.inbound import InboundGateway, InboundSettings
from router.gateway.outbound import OutboundProxy, OutboundSettings, read_message
from router.gateway.proxy_requests import (
    CONNECT_ESTABLISHED,
    MAX_REQUEST_HEAD,
    HttpConnect,
    HttpRequestError,
    SocksGreeting,
    SocksGreetingError,
    SocksReply,
    parse_http_request,
    parse_socks_greeting,
    parse_socks_request,
    socks_reply,
)
from router.http.requests import error_response
from router.matrix.names import server_name
from tests.overlay import MemoryOverlay

TIMEOUT_S = 10.0
GREETING = b"\x05\x01\x00"
CHOSEN = b"\x05\x00"
VERSION_PATH = b"/_matrix/federation/v1/version"


def run(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """The test in its own event loop; pytest sees the coroutine's parameters."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), 60))

    return wrapper


def socks_request(name: bytes, port: int = 8448, command: int = 1) -> bytes:
    """version 5 | command | reserved | name | its length | the name | port."""
    return bytes([5, command, 0, 3, len(name)]) + name + port.to_bytes(2, "big")


def refusal(status: HTTPStatus, message: str) -> bytes:
    return error_response(status, f"pinewood gateway: {message}\n")


# ---------------------------------------------------------------- read_message


def stream(data: bytes, ended: bool) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if ended:
        reader.feed_eof()
    return reader


@run
async def test_messages_are_read_one_after_the_other_and_the_rest_is_kept() -> None:
    tail = b"\x16\x03\x01 the start of TLS"
    reader = stream(GREETING[1:] + socks_request(b"n") + tail, ended=False)
    greeting, rest = await read_message(reader, b"\x05", parse_socks_greeting)
    assert greeting == SocksGreeting(b"\x00", 3)
    request, rest = await read_message(reader, rest, parse_socks_request)
    assert (request.host, request.port, rest) == ("n", 8448, tail)


@run
async def test_a_message_that_arrives_in_pieces_is_waited_for() -> None:
    reader = asyncio.StreamReader()
    head = b"CONNECT n:8448 HTTP/1.1\r\nHost: n\r\n\r\n"
    loop = asyncio.get_running_loop()
    for i, byte in enumerate(head[1:]):
        loop.call_later(0.001 * i, reader.feed_data, bytes([byte]))
    request, rest = await read_message(reader, head[:1], parse_http_request)
    assert (request, rest) == (HttpConnect("n", 8448, len(head)), b"")


@run
async def test_no_more_than_the_head_limit_is_read_without_a_request() -> None:
    endless = b"GET http://n/" + b"a" * (4 * MAX_REQUEST_HEAD)
    reader = stream(endless[1:], ended=True)
    with pytest.raises(HttpRequestError) as caught:
        await read_message(reader, endless[:1], parse_http_request)
    assert caught.value.status is HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
    assert len(await reader.read()) >= 2 * MAX_REQUEST_HEAD  # left unread


@run
async def test_a_client_that_stops_in_the_middle_gets_the_parsers_error() -> None:
    with pytest.raises(SocksGreetingError, match="closed in the middle"):
        await read_message(stream(b"\x02\x00", ended=True), b"\x05", parse_socks_greeting)


@run
async def test_a_client_that_stalls_runs_out_of_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbound_module, "HEAD_TIMEOUT_S", 0.05)
    with pytest.raises(TimeoutError):
        await read_message(stream(b"\x02", ended=False), b"\x05", parse_socks_greeting)


# ---------------------------------------------------------------- a live proxy


@dataclass
class Live:
    proxy: OutboundProxy
    overlay: MemoryOverlay
    unhandled: list[dict[str, Any]] = field(default_factory=list)
    """Every error the event loop was left to handle."""


@asynccontextmanager
async def live_proxy(tmp_path: Path) -> AsyncIterator[Live]:
    """A proxy on loopback for a node in an in-memory overlay."""
    overlay = MemoryOverlay(tmp_path)
    node = overlay.add()
    proxy = OutboundProxy(node.sessions, LocalCA(tmp_path / "ca"), OutboundSettings("", 1.0, 5.0))
    live = Live(proxy, overlay)
    asyncio.get_running_loop().set_exception_handler(lambda _, context: live.unhandled.append(context))
    await proxy.start("127.0.0.1", 0)
    try:
        yield live
    finally:
        proxy.close()
        await overlay.close()


async def exchange(proxy: OutboundProxy, data: bytes, end: bool) -> bytes:
    """Send ``data`` (then end, if ``end``); everything the proxy answers before it closes."""
    assert proxy.address is not None
    reader, writer = await asyncio.open_connection(*proxy.address)
    writer.write(data)
    if end:
        writer.write_eof()
    try:
        return await asyncio.wait_for(reader.read(), TIMEOUT_S)
    finally:
        writer.close()


REFUSALS = [
    pytest.param(b"\x05\x01\x02", False, b"\x05\xff", "refused: socks authentication", id="socks-auth"),
    pytest.param(b"\x05\x02\x00", True, b"\x05\xff", "refused: bad request", id="socks-greeting-cut"),
    pytest.param(
        GREETING + b"\x05\x01\x00\x09",
        False,
        CHOSEN + socks_reply(SocksReply.ADDRESS_TYPE_NOT_SUPPORTED),
        "refused: bad request",
        id="socks-address-type",
    ),
    pytest.param(
        GREETING + socks_request(b"n", command=2),
        False,
        CHOSEN + socks_reply(SocksReply.COMMAND_NOT_SUPPORTED),
        "refused: bad request",
        id="socks-bind",
    ),
    pytest.param(
        GREETING + b"\x04\x01\x00\x01" + bytes(6),
        False,
        CHOSEN + socks_reply(SocksReply.COMMAND_NOT_SUPPORTED),
        "refused: bad request",
        id="socks-version",
    ),
    pytest.param(
        GREETING + b"\x05\x01\x00\x03\xff",
        False,
        CHOSEN + socks_reply(SocksReply.NOT_ALLOWED),
        "refused: bad request",
        id="socks-oversized-domain",
    ),
    pytest.param(
        GREETING + socks_request(b"n")[:-1],
        True,
        CHOSEN + socks_reply(SocksReply.GENERAL_FAILURE),
        "refused: bad request",
        id="socks-request-cut",
    ),
    pytest.param(
        GREETING + socks_request(b"example.org"),
        False,
        CHOSEN + socks_reply(SocksReply.NOT_ALLOWED),
        "refused: not a key name",
        id="socks-not-a-key",
    ),
    pytest.param(
        b"CONNECT n:99999 HTTP/1.1\r\nHost: n\r\n\r\n",
        False,
        refusal(HTTPStatus.BAD_REQUEST, "CONNECT needs host:port"),
        "refused: bad request",
        id="connect-bad-port",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: n\r\n\r\n",
        False,
        refusal(HTTPStatus.BAD_REQUEST, "only CONNECT and absolute http:// requests are proxied"),
        "refused: bad request",
        id="origin-form",
    ),
    pytest.param(
        b"CONNECT n:8448 HTTP/1.1\r\nHo",
        True,
        refusal(HTTPStatus.BAD_REQUEST, "not an HTTP/1.1 request: peer unexpectedly closed connection"),
        "refused: bad request",
        id="connect-cut",
    ),
    pytest.param(
        b"GET http://n/" + b"a" * (MAX_REQUEST_HEAD + 1 - 13),
        False,
        refusal(
            HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, f"the request head is over {MAX_REQUEST_HEAD} bytes"
        ),
        "refused: bad request",
        id="head-too-large",
    ),
    pytest.param(
        b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n",
        False,
        refusal(
            HTTPStatus.FORBIDDEN,
            "'example.org' is not a server name that stands for a node key (64 hex or 52 base32 "
            "characters); the overlay gateway refuses to send it anywhere else",
        ),
        "refused: not a key name",
        id="connect-not-a-key",
    ),
]


@pytest.mark.parametrize(("data", "end", "answer", "counter"), REFUSALS)
@run
async def test_a_refusal_is_answered_then_the_connection_closes(
    tmp_path: Path, data: bytes, end: bool, answer: bytes, counter: str
) -> None:
    async with live_proxy(tmp_path) as live:
        assert await exchange(live.proxy, data, end) == answer
        assert live.proxy.counters[counter] == 1
        assert live.proxy.counters["clients gone before a request"] == 0
    assert live.unhandled == []


class Homeserver:
    """Answers each request head with its target as the body."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None

    async def start(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        host, port = self.server.sockets[0].getsockname()[:2]
        return host, port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                target = head.split(b" ", 2)[1]
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(target), target))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the gateway closed its connection
        finally:
            writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.mark.parametrize("dialect", ["socks5", "connect"])
@run
async def test_bytes_sent_right_behind_a_request_go_into_its_tunnel(tmp_path: Path, dialect: str) -> None:
    homeserver = Homeserver()
    async with live_proxy(tmp_path) as live:
        far = live.overlay.add()
        inbound = InboundGateway(InboundSettings(*(await homeserver.start()), idle_timeout=5.0))
        far.sessions.listen("matrix", inbound.handle)
        name = server_name(far.key).encode()
        get = b"GET " + VERSION_PATH + b" HTTP/1.1\r\nHost: " + name + b"\r\n\r\n"
        if dialect == "socks5":
            request, opened = GREETING + socks_request(name), CHOSEN + socks_reply(SocksReply.SUCCEEDED)
        else:
            request = b"CONNECT %s:8448 HTTP/1.1\r\nHost: %s:8448\r\n\r\n" % (name, name)
            opened = CONNECT_ESTABLISHED
        assert live.proxy.address is not None
        reader, writer = await asyncio.open_connection(*live.proxy.address)
        try:
            writer.write(request + get)  # the tunnel's first request in the same write
            assert await asyncio.wait_for(reader.readexactly(len(opened)), TIMEOUT_S) == opened
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT_S)
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer
            assert await reader.readexactly(len(VERSION_PATH)) == VERSION_PATH
        finally:
            writer.close()
            homeserver.close()
        assert live.proxy.counters["tunnels opened"] == 1
    assert live.unhandled == []
