"""The admin API on a node that is built but has no sockets: requests go in as
bytes through an in-memory stream and the answers are read back as bytes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast

from router.daemon.admin.server import MAX_CONNECTIONS, handle_connection
from router.daemon.config import load_config
from router.daemon.node import Node
from router.http.connection_table import ConnectionTable
from router.wire.keys import Identity


class MemoryTransport:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


class MemoryWriter:
    """The parts of a StreamWriter the server uses, writing into a buffer."""

    def __init__(self) -> None:
        self.transport = MemoryTransport()
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True


def answer_of(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert int(headers["content-length"]) == len(body)
    return status, headers, body


async def exchange(node: Node, table: ConnectionTable, request: bytes) -> tuple[int, dict[str, str], bytes]:
    reader = asyncio.StreamReader(limit=8192)
    reader.feed_data(request)
    reader.feed_eof()
    writer = MemoryWriter()
    await handle_connection(node, table, reader, cast(asyncio.StreamWriter, writer))
    assert writer.closed
    return answer_of(bytes(writer.data))


def with_node(test: Callable[[Node], Coroutine[Any, Any, None]]) -> Callable[[Path], None]:
    def wrapper(tmp_path: Path) -> None:
        async def main() -> None:
            config = load_config(flags={"data_dir": str(tmp_path), "listen": []})
            node = Node(config, Identity.generate())
            await test(node)

        asyncio.run(asyncio.wait_for(main(), 60))

    wrapper.__name__ = test.__name__
    wrapper.__doc__ = test.__doc__
    return wrapper


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:65433\r\n\r\n".encode()


def post(path: str, body: bytes, extra: str = "") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:65433\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


@with_node
async def test_status_and_peers(node: Node) -> None:
    table = ConnectionTable(MAX_CONNECTIONS)
    status, headers, body = await exchange(node, table, get("/status"))
    assert status == 200 and headers["content-type"] == "application/json"
    view = json.loads(body)
    assert view["key"] == node.core.key.hex() and view["peers"] == 0
    assert view["root"]["key"] == node.core.key.hex()  # alone, it is its own root
    status, _, body = await exchange(node, table, get("/peers"))
    assert status == 200 and json.loads(body) == []
    assert table.active == 0  # every connection released


@with_node
async def test_metrics_are_prometheus_text(node: Node) -> None:
    status, headers, body = await exchange(node, ConnectionTable(4), get("/metrics"))
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert b"\npinewood_peers 0.0\n" in b"\n" + body


@with_node
async def test_refusals_name_what_was_wrong(node: Node) -> None:
    table = ConnectionTable(MAX_CONNECTIONS)
    cases = [
        (get("/nowhere"), 404, "no route"),
        (post("/status", b""), 405, "no route"),
        (post("/ping", b"{not json"), 400, "not JSON"),
        (post("/ping", b'{"key": "abc"}'), 400, "key"),
        (post("/peers", b'{"uri": "udp://x:1"}'), 400, ""),
        (b"NONSENSE\r\n\r\n", 400, "malformed request"),
        (b"GET /status HTTP/1.1\r\n\r\n", 400, "Host"),
        (get("//[/status"), 404, "no route"),
        (get("/status" + "x" * 20000), 431, "too large"),
        (
            b"POST /ping HTTP/1.1\r\nHost: 127.0.0.1:65433\r\nContent-Length: 7x\r\n\r\n",
            400,
            "Content-Length",
        ),
        (
            b"POST /ping HTTP/1.1\r\nHost: 127.0.0.1:65433\r\nContent-Length: 99999999\r\n\r\n",
            413,
            "body over",
        ),
    ]
    for request, expected, reason in cases:
        status, _, body = await exchange(node, table, request)
        assert status == expected, (request[:40], status, body)
        assert reason in json.loads(body)["error"], body
    assert table.active == 0


@with_node
async def test_what_a_web_page_could_send_is_refused(node: Node) -> None:
    """A name other than an address (a rebound DNS name) is refused outright, and a
    change from another origin too; the page's own origin and the CLI (no Origin) may."""
    table = ConnectionTable(MAX_CONNECTIONS)
    rebound = b"GET /status HTTP/1.1\r\nHost: attacker.example:65433\r\n\r\n"
    status, _, body = await exchange(node, table, rebound)
    assert status == 421 and "not served for host" in json.loads(body)["error"]
    for host in ("localhost:65433", "[::1]:65433", "127.0.0.1"):
        request = f"GET /status HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        assert (await exchange(node, table, request))[0] == 200, host
    peer = b'{"uri": "tcp://192.0.2.1:1", "save": false}'
    for origin, expected in (
        ("http://attacker.example", 403),
        ("null", 403),
        ("http://127.0.0.1:65434", 403),
        ("http://127.0.0.1:65433", 200),
    ):
        status, _, body = await exchange(node, table, post("/peers", peer, f"Origin: {origin}\r\n"))
        assert status == expected, (origin, body)
    status, _, _ = await exchange(node, table, post("/peers", peer))  # the CLI sends no Origin
    assert status == 200
    # Reading from the page's own origin, or any (a cross-origin page cannot read the answer).
    request = b"GET /status HTTP/1.1\r\nHost: 127.0.0.1:65433\r\nOrigin: http://attacker.example\r\n\r\n"
    assert (await exchange(node, table, request))[0] == 200


@with_node
async def test_a_chunked_body_is_read_whole(node: Node) -> None:
    body = json.dumps({"key": "zz"}).encode()
    chunked = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 5]), body[i : i + 5]) for i in range(0, len(body), 5)
    )
    request = (
        b"POST /ping HTTP/1.1\r\nHost: 127.0.0.1:65433\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked
        + b"0\r\n\r\n"
    )
    status, _, answer = await exchange(node, ConnectionTable(4), request)
    # The body arrived: the key in it is what was refused, not a missing body.
    assert status == 400 and "key" in json.loads(answer)["error"], answer


@with_node
async def test_a_static_peer_added_and_removed(node: Node) -> None:
    table = ConnectionTable(MAX_CONNECTIONS)
    uri = "tcp://127.0.0.1:9"  # the discard port: nothing answers, and nothing need
    status, _, body = await exchange(node, table, post("/peers", json.dumps({"uri": uri}).encode()))
    assert status == 200, body
    status, _, body = await exchange(node, table, get("/peers"))
    [entry] = json.loads(body)  # configured, not connected: shown with its dial state
    assert status == 200 and entry["uri"] == uri and "port" not in entry
    request = f"DELETE /peers?uri={uri} HTTP/1.1\r\nHost: 127.0.0.1:65433\r\n\r\n".encode()
    status, _, body = await exchange(node, table, request)
    assert status == 200, body
    status, _, _ = await exchange(node, table, request)
    assert status == 404
    status, _, body = await exchange(node, table, get("/peers"))
    assert json.loads(body) == []
    await node.stop()


@with_node
async def test_a_full_table_answers_503_and_the_oldest_idle_makes_way(node: Node) -> None:
    table = ConnectionTable(1)
    idle = MemoryTransport()
    assert table.admit(cast(asyncio.WriteTransport, idle))  # one connection that has sent nothing yet
    status, _, _ = await exchange(node, table, get("/status"))
    assert status == 200 and idle.aborted  # it made way
    table.release(cast(asyncio.WriteTransport, idle))  # as its handler does once aborted
    busy = MemoryTransport()
    assert table.admit(cast(asyncio.WriteTransport, busy))
    table.busy(cast(asyncio.WriteTransport, busy))  # mid-request: it cannot be evicted
    writer = MemoryWriter()
    reader = asyncio.StreamReader()
    reader.feed_data(get("/status"))
    reader.feed_eof()
    await handle_connection(node, table, reader, cast(asyncio.StreamWriter, writer))
    assert answer_of(bytes(writer.data))[0] == 503 and not busy.aborted


def test_a_peer_in_the_configuration_is_not_saved_and_one_removed_does_not_come_back(tmp_path: Path) -> None:
    uri = "tcp://127.0.0.1:9"  # the discard port: nothing answers, and nothing need
    saved = tmp_path / "peers.json"

    async def run(peers: list[str], requests: list[bytes]) -> list[int]:
        config = load_config(
            flags={"data_dir": str(tmp_path), "listen": [], "peers": ",".join(peers) or None}
        )
        node = Node(config, Identity.generate())
        await node.start()
        try:
            table = ConnectionTable(MAX_CONNECTIONS)
            return [(await exchange(node, table, request))[0] for request in requests]
        finally:
            await node.stop()

    add = post("/peers", json.dumps({"uri": uri}).encode())
    remove = f"DELETE /peers?uri={uri} HTTP/1.1\r\nHost: 127.0.0.1:65433\r\n\r\n".encode()

    async def main() -> None:
        assert await run([], [add]) == [200]
        assert json.loads(saved.read_text()) == {"peers": [uri]}
        # Now also in the configuration: configured from there first; removing it
        # forgets the saved copy too, so taking it out of the file is enough.
        assert await run([uri], [add, remove]) == [200, 200]
        assert json.loads(saved.read_text()) == {"peers": []}
        assert await run([uri], [add]) == [200]  # in the configuration: nothing to save
        assert json.loads(saved.read_text()) == {"peers": []}

    asyncio.run(asyncio.wait_for(main(), 60))
