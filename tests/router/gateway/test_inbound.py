"""The inbound gateway over an in-memory overlay: node A opens session streams
to node B, whose gateway checks each request before a homeserver stand-in on
loopback sees it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11
import pytest

from router.gateway import inbound as inbound_module
from router.gateway.inbound import InboundGateway, InboundResetCode, InboundSettings
from router.gateway.shares import ShareLimits
from router.matrix.names import server_name
from router.sessions.errors import StreamReset
from router.sessions.stream import SessionStream
from tests.logs import capture_events
from tests.overlay import MemoryNode, MemoryOverlay

TIMEOUT_S = 5.0


@dataclass
class Seen:
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytearray = field(default_factory=bytearray)
    first_bytes: asyncio.Event = field(default_factory=asyncio.Event)


class Homeserver:
    """Answers each request with its method, path and body length, as JSON, after
    reading the whole body; records what it saw and when bytes arrived."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.arrived = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        host, port = self.server.sockets[0].getsockname()[:2]
        return host, port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        current: Seen | None = None
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                elif isinstance(event, h11.Request):
                    current = Seen(event.method, event.target, list(event.headers))
                    self.seen.append(current)
                    self.arrived.set()
                elif isinstance(event, h11.Data) and current is not None:
                    current.body += event.data
                    current.first_bytes.set()
                elif isinstance(event, h11.EndOfMessage) and current is not None:
                    body = json.dumps(
                        {
                            "method": current.method.decode(),
                            "path": current.target.decode(),
                            "length": len(current.body),
                        }
                    ).encode()
                    writer.write(
                        conn.send(h11.Response(status_code=200, headers=[("Content-Length", str(len(body)))]))
                        or b""
                    )
                    writer.write(
                        (conn.send(h11.Data(data=body)) or b"") + (conn.send(h11.EndOfMessage()) or b"")
                    )
                    await writer.drain()
                    if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                        break
                    conn.start_next_cycle()
                else:
                    break
        finally:
            writer.close()

    def paths(self) -> list[bytes]:
        return [s.target for s in self.seen]

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


@dataclass
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """Raw HTTP/1.1 on a session stream, answers parsed by hand so that requests
    can be pipelined."""

    def __init__(self, stream: SessionStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def send(self, data: bytes) -> None:
        self.stream.write(data)
        await self.stream.drain()

    async def _more(self) -> bool:
        data = await asyncio.wait_for(self.stream.read(65536), TIMEOUT_S)
        self.buffer += data
        return bool(data)

    async def answer(self) -> Answer:
        while b"\r\n\r\n" not in self.buffer:
            if not await self._more():
                raise EOFError(self.buffer)
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(b":", 1) for line in lines[1:])}
        length = int(headers.get(b"content-length", b"0"))
        while len(self.buffer) < length:
            if not await self._more():
                raise EOFError(self.buffer)
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Answer(status, headers, body)

    async def ended(self) -> bool:
        """Whether the gateway finished the stream (after what is buffered)."""
        return not await self._more()


def request(method: str, path: str, origin: str | None = None, body: bytes = b"", extra: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: far\r\n"
    if origin is not None:
        head += f'Authorization: X-Matrix origin="{origin}",destination="far",key="ed25519:k",sig="s"\r\n'
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    return (head + extra + "\r\n").encode() + body


@dataclass
class Setup:
    overlay: MemoryOverlay
    homeserver: Homeserver
    a: MemoryNode
    b: MemoryNode
    gateway: InboundGateway

    @property
    def origin(self) -> str:
        return server_name(self.a.key)

    async def client(self, node: MemoryNode | None = None) -> Client:
        stream = await (node or self.a).sessions.open_stream(self.b.key, "matrix", TIMEOUT_S)
        return Client(stream)


def run(
    limits: ShareLimits | None = None, **settings: Any
) -> Callable[[Callable[[Setup], Coroutine[Any, Any, None]]], Callable[[Path], None]]:
    def decorate(test: Callable[[Setup], Coroutine[Any, Any, None]]) -> Callable[[Path], None]:
        async def main(tmp_path: Path) -> None:
            overlay = MemoryOverlay(tmp_path)
            homeserver = Homeserver()
            host, port = await homeserver.start()
            a, b = overlay.add(), overlay.add()
            gateway = InboundGateway(
                InboundSettings(
                    host, port, idle_timeout=TIMEOUT_S, limits=limits or ShareLimits(), **settings
                )
            )
            b.sessions.listen("matrix", gateway.handle)
            try:
                await test(Setup(overlay, homeserver, a, b, gateway))
            finally:
                homeserver.close()
                await overlay.close()

        def wrapper(tmp_path: Path) -> None:
            asyncio.run(asyncio.wait_for(main(tmp_path), 60))

        wrapper.__name__ = test.__name__
        return wrapper

    return decorate


@run()
async def test_only_the_server_server_api_reaches_the_homeserver(s: Setup) -> None:
    client = await s.client()
    for path in ("/_matrix/federation/v1/version", "/_matrix/key/v2/server"):
        await client.send(request("GET", path))
        answer = await client.answer()
        assert answer.status == 200 and answer.json()["path"] == path
    refused = [
        "/_matrix/client/versions",
        "/_synapse/admin/v1/register",
        "/made/up",
        "/_matrix/federation/../client/versions",
    ]
    for path in refused:
        await client.send(request("GET", path, origin=s.origin))
        answer = await client.answer()
        assert answer.status == 404, (path, answer)
        assert answer.json()["errcode"] == "M_UNRECOGNIZED" and "path" in answer.json()["error"]
    assert s.homeserver.paths() == [b"/_matrix/federation/v1/version", b"/_matrix/key/v2/server"]
    assert s.gateway.counters["refused 404: not a server-server API path"] == 3
    assert s.gateway.counters["refused 404: a path with dot segments, backslashes or a fragment"] == 1
    assert s.gateway.counters["requests passed"] == 2


@run()
async def test_a_signed_request_must_come_from_the_node_that_opened_the_session(s: Setup) -> None:
    client = await s.client()
    send = "/_matrix/federation/v1/send/1"
    await client.send(request("PUT", send, origin=server_name(s.b.key), body=b"{}"))  # claims to be B
    forged = await client.answer()
    assert forged.status == 401 and forged.json()["errcode"] == "M_UNAUTHORIZED"
    assert server_name(s.b.key) in forged.json()["error"]
    await client.send(request("PUT", send, body=b"{}"))  # not signed at all
    assert (await client.answer()).status == 401
    for origin in (s.origin, s.a.key.hex()):
        await client.send(request("PUT", send, origin=origin, body=b"{}"))
        answer = await client.answer()
        assert answer.status == 200 and answer.json() == {"method": "PUT", "path": send, "length": 2}
    assert s.homeserver.paths() == [send.encode(), send.encode()]
    assert s.gateway.counters["refused 401: the X-Matrix origin is not the node that sent the request"] == 1
    assert s.gateway.counters["refused 401: a federation request without X-Matrix authorization"] == 1


@run(limits=ShareLimits(requests_per_second=1.0, request_burst=3.0))
async def test_a_burst_past_a_nodes_share_is_answered_429(s: Setup) -> None:
    client = await s.client()
    statuses = []
    for _ in range(5):
        await client.send(request("GET", "/_matrix/federation/v1/version"))
        answer = await client.answer()
        statuses.append(answer.status)
    assert statuses == [200, 200, 200, 429, 429]
    assert answer.headers[b"retry-after"] == b"1"
    assert answer.json()["errcode"] == "M_LIMIT_EXCEEDED"
    assert len(s.homeserver.seen) == 3
    assert s.gateway.counters["refused 429: over this node's share of requests"] == 2
    other = s.overlay.add()
    client = await s.client(other)  # another node has a share of its own
    await client.send(request("GET", "/_matrix/federation/v1/version"))
    assert (await client.answer()).status == 200


@run()
async def test_pipelined_requests_are_each_checked_and_answered_in_order(s: Setup) -> None:
    client = await s.client()
    await client.send(
        request("PUT", "/_matrix/federation/v1/send/1", origin=s.origin, body=b"one")
        + request("POST", "/_matrix/client/v3/login", body=b"x" * 5000)  # refused; its body is skipped
        + request("GET", "/_matrix/key/v2/server")
        + request("PUT", "/_matrix/federation/v1/send/2", origin="matrix.org", body=b"two")
        + request("GET", "/_matrix/federation/v1/version")
    )
    answers = [await client.answer() for _ in range(5)]
    assert [a.status for a in answers] == [200, 404, 200, 401, 200]
    assert [a.json()["path"] for a in answers if a.status == 200] == [
        "/_matrix/federation/v1/send/1",
        "/_matrix/key/v2/server",
        "/_matrix/federation/v1/version",
    ]
    assert s.homeserver.paths() == [
        b"/_matrix/federation/v1/send/1",
        b"/_matrix/key/v2/server",
        b"/_matrix/federation/v1/version",
    ]


@run()
async def test_a_chunked_body_is_streamed_to_the_homeserver_not_held(s: Setup) -> None:
    client = await s.client()
    head = (
        f"PUT /_matrix/federation/v1/send/3 HTTP/1.1\r\nHost: far\r\n"
        f'Authorization: X-Matrix origin="{s.origin}",key="ed25519:k",sig="s"\r\n'
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    first = b"a" * 1000
    await client.send(head + b"%x\r\n%s\r\n" % (len(first), first))
    await asyncio.wait_for(s.homeserver.arrived.wait(), TIMEOUT_S)
    seen = s.homeserver.seen[0]
    await asyncio.wait_for(seen.first_bytes.wait(), TIMEOUT_S)  # before the rest was sent
    assert bytes(seen.body) == first
    rest = b"b" * 70000
    await client.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(rest), rest))
    answer = await client.answer()
    assert answer.status == 200 and answer.json()["length"] == len(first) + len(rest)
    assert bytes(seen.body) == first + rest


@run()
async def test_a_stream_that_breaks_http_gets_400_and_is_closed(s: Setup) -> None:
    client = await s.client()
    await client.send(request("GET", "/_matrix/federation/v1/version") + b"THIS IS NOT HTTP\r\n\r\n")
    assert (await client.answer()).status == 200
    answer = await client.answer()
    assert answer.status == 400 and b"not an HTTP/1.1 request" in answer.body
    assert await client.ended()
    assert s.gateway.counters["refused 400: not an HTTP/1.1 request"] == 1
    assert len(s.homeserver.seen) == 1


@run(limits=ShareLimits(max_streams=3, max_streams_per_peer=2))
async def test_one_node_cannot_hold_every_stream(s: Setup) -> None:
    held = [await s.client(), await s.client()]
    for client in held:  # each stream is served (and stays open, kept alive)
        await client.send(request("GET", "/_matrix/federation/v1/version"))
        assert (await client.answer()).status == 200
    third = await s.client()
    await third.send(request("GET", "/_matrix/federation/v1/version"))
    with pytest.raises(StreamReset) as reset:
        await third.answer()
    assert reset.value.code == InboundResetCode.BUSY
    assert s.gateway.counters["refused: one node's share of streams"] == 1
    other = await s.client(s.overlay.add())
    await other.send(request("GET", "/_matrix/federation/v1/version"))
    assert (await other.answer()).status == 200


@run()
async def test_refusals_are_logged_at_a_bounded_rate(s: Setup) -> None:
    client = await s.client()
    with capture_events() as logs:
        for _ in range(40):
            await client.send(request("GET", "/_matrix/client/versions"))
            assert (await client.answer()).status == 404
    lines = [line for line in logs if line["event"] == "refused an inbound federation request"]
    assert len(lines) <= inbound_module.LOG_BURST + 1
    assert (
        lines[0]["reason"] == "not a server-server API path"
        and lines[0]["path"] == "/_matrix/client/versions"
    )
    assert s.gateway.counters["refused 404: not a server-server API path"] == 40


@run()
async def test_a_homeserver_that_is_down_resets_the_stream_with_the_reason(s: Setup) -> None:
    s.homeserver.close()
    assert s.homeserver.server is not None
    await s.homeserver.server.wait_closed()
    client = await s.client()
    await client.send(request("GET", "/_matrix/federation/v1/version"))
    with pytest.raises(StreamReset) as reset:
        await client.answer()
    assert reset.value.code == InboundResetCode.HOMESERVER_UNREACHABLE
    assert s.gateway.counters["failed: homeserver unreachable"] == 1


@run(paths=("/_matrix/federation/", "/_matrix/client/versions"))
async def test_the_paths_are_the_operators_to_widen(s: Setup) -> None:
    client = await s.client()
    await client.send(request("GET", "/_matrix/client/versions"))
    assert (await client.answer()).status == 200
    await client.send(request("GET", "/_matrix/key/v2/server"))  # no longer listed
    assert (await client.answer()).status == 404


@run()
async def test_requests_that_follow_closely_share_a_connection_to_the_homeserver(s: Setup) -> None:
    now = [100.0]
    s.gateway.clock = lambda: now[0]
    client = await s.client()
    for _ in range(3):
        await client.send(request("GET", "/_matrix/federation/v1/version"))
        assert (await client.answer()).status == 200
    assert s.gateway.counters["connections to the homeserver"] == 1
    now[0] += inbound_module.REUSE_IDLE_S + 0.1  # quiet too long: it may be closing
    await client.send(request("GET", "/_matrix/federation/v1/version"))
    assert (await client.answer()).status == 200
    assert s.gateway.counters["connections to the homeserver"] == 2
    other = await s.client()  # each stream has its own
    await other.send(request("GET", "/_matrix/key/v2/server"))
    assert (await other.answer()).status == 200
    assert s.gateway.counters["connections to the homeserver"] == 3


@run()
async def test_a_refused_head_request_gets_the_head_of_the_answer(s: Setup) -> None:
    client = await s.client()
    await client.send(request("HEAD", "/_matrix/client/versions"))
    client.buffer = b""
    while b"\r\n\r\n" not in client.buffer:
        assert await client._more()
    head, rest = client.buffer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 404") and rest == b""
    client.buffer = b""
    await client.send(request("HEAD", "/_matrix/federation/v1/version"))  # the stream serves on
    while b"\r\n\r\n" not in client.buffer:
        assert await client._more()
    assert client.buffer.startswith(b"HTTP/1.1 200")
