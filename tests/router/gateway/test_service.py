"""Both directions of the gateway over an in-memory overlay: a client of node A's
proxy reaches node B's homeserver (a stand-in on loopback) by B's server name,
through TLS that A's local CA signs and a session stream from A to B."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from router.gateway.proxy_requests import SocksReply
from router.gateway.service import Gateway, GatewaySettings
from router.matrix.names import server_name
from tests.overlay import MemoryNode, MemoryOverlay

SESSION_TIMEOUT_S = 1.5


class Homeserver:
    """A plain-HTTP federation listener that answers every request with its own path."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        host, port = self.server.sockets[0].getsockname()[:2]
        return host, port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while head := await reader.readuntil(b"\r\n\r\n"):
            self.requests.append(head)
            body = head.split(b" ", 2)[1]
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


def settings(
    node: MemoryNode, tmp_path: Path, homeserver: tuple[str, int] | None, proxy: bool
) -> GatewaySettings:
    return GatewaySettings(
        key=node.key,
        server_name_suffix="",
        ca_dir=tmp_path / node.key.hex()[:8] / "gateway",
        listen=("127.0.0.1", 0) if proxy else None,
        homeserver=homeserver,
        homeserver_url=f"http://{homeserver[0]}:{homeserver[1]}" if homeserver else "",
        session_timeout=SESSION_TIMEOUT_S,
        idle_timeout=30.0,
        max_streams=16,
    )


async def connect_via(
    gateway: Gateway, name: str
) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    """CONNECT through the proxy; the proxy's answer head and the open connection."""
    assert gateway.outbound is not None and gateway.outbound.address is not None
    reader, writer = await asyncio.open_connection(*gateway.outbound.address)
    writer.write(f"CONNECT {name}:8448 HTTP/1.1\r\nHost: {name}:8448\r\n\r\n".encode())
    return await reader.readuntil(b"\r\n\r\n"), reader, writer


def run(test: Callable[[Path], Coroutine[Any, Any, None]]) -> Callable[[Path], None]:
    def wrapper(tmp_path: Path) -> None:
        asyncio.run(asyncio.wait_for(test(tmp_path), 60))

    wrapper.__name__ = test.__name__
    return wrapper


@run
async def test_a_request_reaches_the_far_homeserver_by_its_key_name(tmp_path: Path) -> None:
    overlay = MemoryOverlay(tmp_path)
    homeserver = Homeserver()
    a, b = overlay.add(), overlay.add()
    out = Gateway(settings(a, tmp_path, None, proxy=True), a.sessions)
    far = Gateway(settings(b, tmp_path, await homeserver.start(), proxy=False), b.sessions)
    await out.start()
    try:
        name = server_name(b.key)
        head, reader, writer = await connect_via(out, name)
        assert head.startswith(b"HTTP/1.1 200"), head
        assert out.ca is not None
        context = ssl.create_default_context(cafile=str(out.ca.cert_path))
        await writer.start_tls(context, server_hostname=name)  # A's CA vouches for B's name
        for path in (b"/_matrix/federation/v1/version", b"/_matrix/key/v2/server"):
            writer.write(b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, name.encode()))
            answer = await reader.readuntil(b"\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 200") and await reader.readexactly(len(path)) == path
        assert [r.split(b" ")[1] for r in homeserver.requests] == [
            b"/_matrix/federation/v1/version",
            b"/_matrix/key/v2/server",
        ]
        writer.close()
        assert out.outbound is not None and far.inbound is not None
        assert out.outbound.counters["tunnels opened"] == 1
        assert far.status()["inbound_counters"] == dict(far.inbound.counters)
    finally:
        out.close()
        homeserver.close()
        await overlay.close()


@run
async def test_names_that_are_not_keys_are_refused(tmp_path: Path) -> None:
    overlay = MemoryOverlay(tmp_path)
    a = overlay.add()
    out = Gateway(settings(a, tmp_path, None, proxy=True), a.sessions)
    await out.start()
    try:
        for name in ("matrix.org", "example.com", "a" * 51):
            head, _, writer = await connect_via(out, name)
            assert head.startswith(b"HTTP/1.1 403 Forbidden"), (name, head)
            writer.close()
        assert out.outbound is not None and out.outbound.counters["refused: not a key name"] == 3
    finally:
        out.close()
        await overlay.close()


@run
async def test_an_unreachable_node_is_a_504_within_the_session_timeout(tmp_path: Path) -> None:
    overlay = MemoryOverlay(tmp_path)
    a, b = overlay.add(), overlay.add()
    overlay.offline.add(b.key)
    out = Gateway(settings(a, tmp_path, None, proxy=True), a.sessions)
    await out.start()
    try:
        started = time.monotonic()
        head, reader, writer = await connect_via(out, server_name(b.key))
        took = time.monotonic() - started
        assert head.startswith(b"HTTP/1.1 504 Gateway Timeout"), head
        assert SESSION_TIMEOUT_S <= took < SESSION_TIMEOUT_S + 2.0
        assert b"cannot reach" in await reader.read()
        writer.close()
    finally:
        out.close()
        await overlay.close()


async def request_through(out: Gateway, name: str) -> bytes:
    """CONNECT, TLS, one GET: the answer's head and body, as the homeserver reads them."""
    head, reader, writer = await connect_via(out, name)
    assert head.startswith(b"HTTP/1.1 200"), head
    assert out.ca is not None
    await writer.start_tls(ssl.create_default_context(cafile=str(out.ca.cert_path)), server_hostname=name)
    writer.write(f"GET /_matrix/federation/v1/version HTTP/1.1\r\nHost: {name}\r\n\r\n".encode())
    answer = await reader.read()
    writer.close()
    return answer


@run
async def test_a_node_that_runs_no_homeserver_is_a_502_that_says_so(tmp_path: Path) -> None:
    overlay = MemoryOverlay(tmp_path)
    a, b = overlay.add(), overlay.add()  # b has no gateway: nothing takes federation streams
    out = Gateway(settings(a, tmp_path, None, proxy=True), a.sessions)
    await out.start()
    try:
        answer = await request_through(out, server_name(b.key))
        assert answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n"), answer
        assert b"runs no homeserver" in answer
        assert b.sessions.counters["streams refused (no listener)"] == 1
    finally:
        out.close()
        await overlay.close()


@run
async def test_a_far_homeserver_that_is_down_is_a_502_that_says_so(tmp_path: Path) -> None:
    overlay = MemoryOverlay(tmp_path)
    homeserver = Homeserver()
    a, b = overlay.add(), overlay.add()
    out = Gateway(settings(a, tmp_path, None, proxy=True), a.sessions)
    address = await homeserver.start()
    homeserver.close()  # b is configured for a homeserver that is not there
    far = Gateway(settings(b, tmp_path, address, proxy=False), b.sessions)
    await out.start()
    try:
        answer = await request_through(out, server_name(b.key))
        assert answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n"), answer
        assert b"is not answering its node" in answer
        assert far.inbound is not None and far.inbound.counters["failed: homeserver unreachable"] == 1
    finally:
        out.close()
        await overlay.close()


@run
async def test_socks5_refusals_carry_the_matching_reply_codes(tmp_path: Path) -> None:
    overlay = MemoryOverlay(tmp_path)
    a, b = overlay.add(), overlay.add()
    overlay.offline.add(b.key)
    out = Gateway(settings(a, tmp_path, None, proxy=True), a.sessions)
    await out.start()
    assert out.outbound is not None and out.outbound.address is not None

    async def socks(name: str) -> int:
        reader, writer = await asyncio.open_connection(*out.outbound.address)  # type: ignore[union-attr, misc]
        writer.write(b"\x05\x01\x00")
        assert await reader.readexactly(2) == b"\x05\x00"
        writer.write(b"\x05\x01\x00\x03" + bytes([len(name)]) + name.encode() + (8448).to_bytes(2, "big"))
        reply = await reader.readexactly(10)
        writer.close()
        return reply[1]

    try:
        assert await socks("example.org") == SocksReply.NOT_ALLOWED
        assert await socks(server_name(b.key)) == SocksReply.HOST_UNREACHABLE  # 504's meaning
    finally:
        out.close()
        await overlay.close()
