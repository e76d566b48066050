"""The relay client against a real relay service and a homeserver stand-in, over
an in-memory overlay: record publishing and lookups, deposits, and delivery to
the homeserver exactly once, in order."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from relay.client import RelayClientSettings, RelayUnavailable
from relay.errors import CallTimeout, SessionLost
from relay.messages import Ack, Acked, Fetch, Fetched, Refused, Register, Registered
from relay.protocol import ErrorCode, ProtocolError
from relay.records import RecordError
from relay.stores.base import secret_hash
from router.matrix.names import server_name
from router.wire.keys import Identity
from tests.overlay import MemoryNode, MemoryOverlay


class Homeserver:
    """Answers each HTTP request with the next status of ``statuses`` (the last
    one repeated) and keeps the requests it was sent."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        host, port = self.server.sockets[0].getsockname()[:2]
        return host, port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        self.requests.append(head + await reader.readexactly(length))
        status = self.statuses[min(len(self.requests), len(self.statuses)) - 1]
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\n{{}}".encode())
        await writer.drain()
        writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


def request(n: int, origin: bytes, path: str = "/_matrix/federation/v1/send/") -> bytes:
    """A transaction as ``origin``'s homeserver sends it (the signature is not checked here)."""
    body = f'{{"n": {n}}}'.encode()
    return (
        f"PUT {path}{n} HTTP/1.1\r\nHost: x\r\n"
        f'Authorization: X-Matrix origin="{server_name(origin)}",key="ed25519:a",sig="c2ln"\r\n'
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


async def until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.01)
    return result


def run(test: Callable[[Path], Coroutine[Any, Any, None]]) -> Callable[[Path], None]:
    @functools.wraps(test)
    def wrapper(tmp_path: Path) -> None:
        asyncio.run(asyncio.wait_for(test(tmp_path), 120))

    return wrapper


async def three_nodes(
    tmp_path: Path, statuses: list[int]
) -> tuple[MemoryOverlay, Homeserver, MemoryNode, MemoryNode, MemoryNode]:
    """A relay R, a recipient B with one mailbox on R and a homeserver, and a
    sender S with no relay of its own (so it deposits on R directly)."""
    overlay = MemoryOverlay(tmp_path)
    homeserver = Homeserver(statuses)
    address = await homeserver.start()
    # B has the lowest key, so its record is kept by the node above it (R), and
    # a lookup for B while it is away ends there too, without key space wrapping.
    low, middle, high = sorted((Identity.generate() for _ in range(3)), key=lambda i: bytes(i.public_key))
    b, r, s = overlay.add(low), overlay.add(middle), overlay.add(high)
    await overlay.with_service(r)
    overlay.with_client(r, RelayClientSettings(relays=(), homeserver=None))
    overlay.with_client(b, RelayClientSettings(relays=(r.key,), homeserver=address, fetch_interval_s=3600))
    overlay.with_client(s, RelayClientSettings(relays=(), homeserver=None, allow_direct=True))
    for node in (r, b, s):
        assert node.client is not None
        node.client.start()
    assert b.client is not None
    # B registers, publishes and fetches once at start; the tests fetch by hand after that.
    await until(lambda: b.client is not None and b.client.own is not None, "b publishes its record")
    await until(lambda: b.client is not None and b.client.counters["fetch rounds"] >= 1, "b's first fetch")
    return overlay, homeserver, r, b, s


@run
async def test_a_deposit_is_delivered_once_and_a_refetched_copy_is_dropped(tmp_path: Path) -> None:
    overlay, homeserver, r, b, s = await three_nodes(tmp_path, [200])
    assert b.client is not None and s.client is not None and r.service is not None
    try:
        # S finds B's record in key space (from B itself, which is up) and deposits on R.
        assert await s.client.deposit(b.key, request(1, s.key)) == r.key
        assert s.client.counters["envelopes deposited"] == 1
        mailbox, secret = b.client.mailboxes[r.key]
        [stored] = await r.service.store.fetch(mailbox, secret_hash(secret), 10, time.time())

        assert await b.client.fetch_all() == 1
        assert homeserver.requests == [request(1, s.key)]  # replayed byte for byte
        assert await r.service.store.fetch(mailbox, secret_hash(secret), 10, time.time()) == []

        # The same envelope again (as after a lost acknowledgement): dropped, and acknowledged.
        await r.service.store.deposit(mailbox, stored.envelope_id, stored.expires, stored.body, time.time())
        assert await b.client.fetch_all() == 0
        assert homeserver.requests == [request(1, s.key)]
        assert b.client.counters["duplicates dropped"] == 1
        assert await r.service.store.fetch(mailbox, secret_hash(secret), 10, time.time()) == []
    finally:
        homeserver.close()
        await overlay.close()


@run
async def test_order_is_kept_while_the_homeserver_cannot_take_a_request(tmp_path: Path) -> None:
    # 503: try again later, from the same envelope; then 400: refused for good; then 200.
    overlay, homeserver, _r, b, s = await three_nodes(tmp_path, [503, 400, 200])
    assert b.client is not None and s.client is not None
    try:
        await s.client.deposit(b.key, request(1, s.key))
        await s.client.deposit(b.key, request(2, s.key))
        assert await b.client.fetch_all() == 0  # 503 on the first: nothing after it is tried
        assert homeserver.requests == [request(1, s.key)]
        assert b.client.counters["homeserver answered 503"] == 1
        assert await b.client.fetch_all() == 1  # 400 drops the first; the second is taken
        assert homeserver.requests == [request(1, s.key), request(1, s.key), request(2, s.key)]
        assert b.client.counters["homeserver answered 400"] == 1
        assert b.client.counters["envelopes delivered"] == 1
        assert await b.client.fetch_all() == 0  # both acknowledged
        assert len(homeserver.requests) == 3
    finally:
        homeserver.close()
        await overlay.close()


@run
async def test_an_unreachable_homeserver_leaves_the_envelope_on_the_relay(tmp_path: Path) -> None:
    overlay, homeserver, r, b, s = await three_nodes(tmp_path, [200])
    assert b.client is not None and s.client is not None and r.service is not None
    homeserver.close()
    try:
        await s.client.deposit(b.key, request(1, s.key))
        assert await b.client.fetch_all() == 0
        assert b.client.counters["homeserver unreachable"] == 1
        mailbox, secret = b.client.mailboxes[r.key]
        assert len(await r.service.store.fetch(mailbox, secret_hash(secret), 10, time.time())) == 1
    finally:
        await overlay.close()


@run
async def test_a_node_with_no_record_cannot_be_deposited_for(tmp_path: Path) -> None:
    overlay, homeserver, _r, _b, s = await three_nodes(tmp_path, [200])
    assert s.client is not None
    try:
        with pytest.raises(RelayUnavailable, match="published no relays"):
            await s.client.deposit(bytes(range(32)), request(1, s.key))
        assert s.client.counters["deposits without a record"] == 1
    finally:
        homeserver.close()
        await overlay.close()


@run
async def test_an_offline_recipients_record_is_found_where_it_was_stored(tmp_path: Path) -> None:
    overlay, homeserver, r, b, s = await three_nodes(tmp_path, [200])
    assert s.client is not None and b.client is not None
    try:
        # B's record went to the node above B's key (or round to the lowest).
        holders = [
            n
            for n in overlay.nodes.values()
            if n is not b and n.client and n.client.records.book.get(b.key, time.time())
        ]
        assert holders, "no other node holds b's record"
        overlay.offline.add(b.key)
        record = await s.client.records.lookup(b.key, fresh=True)
        assert record is not None and record.subject == b.key
        assert [e.relay for e in record.relays] == [r.key]
    finally:
        homeserver.close()
        await overlay.close()


@run
async def test_a_deposit_that_is_not_http_is_dropped_not_retried(tmp_path: Path) -> None:
    overlay, homeserver, _r, b, s = await three_nodes(tmp_path, [200])
    assert b.client is not None and s.client is not None
    try:
        await s.client.deposit(b.key, b"not an HTTP request\r\n\r\n")
        await s.client.deposit(b.key, request(2, s.key))
        assert await b.client.fetch_all() == 1  # the second, after the first was dropped
        assert homeserver.requests == [request(2, s.key)]
        assert b.client.counters["undeliverable envelopes"] == 1
    finally:
        homeserver.close()
        await overlay.close()


@run
async def test_a_deposit_the_homeserver_is_not_offered_is_dropped_not_retried(tmp_path: Path) -> None:
    """A relayed request passes the checks the inbound gateway makes: a federation
    path, and an origin that names the node that sealed the envelope."""
    overlay, homeserver, r, b, s = await three_nodes(tmp_path, [200])
    assert b.client is not None and s.client is not None
    try:
        await s.client.deposit(b.key, request(1, r.key))  # signed as R, sealed by S
        await s.client.deposit(b.key, request(2, s.key, path="/_synapse/admin/v1/register/"))
        await s.client.deposit(b.key, request(3, s.key))
        assert await b.client.fetch_all() == 1
        assert homeserver.requests == [request(3, s.key)]
        counters = b.client.counters
        assert counters["envelopes refused: the X-Matrix origin is not the node that sent the request"] == 1
        assert counters["envelopes refused: not a server-server API path"] == 1
    finally:
        homeserver.close()
        await overlay.close()


class Calls:
    """Stands in for a client's calls to its relay: each kind of request gets
    the answer (or raises the error) ``outcomes`` gives for it."""

    def __init__(self, outcomes: dict[type, object]) -> None:
        self.outcomes = outcomes
        self.asked: list[object] = []

    async def call(self, relay: bytes, request: object, timeout: float) -> object:
        self.asked.append(request)
        outcome = self.outcomes[type(request)]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def close(self) -> None:
        pass


FINE: dict[type, object] = {Register: Registered(1, 1, 1), Fetch: Fetched(()), Ack: Acked(0)}

FAILURES = ("mailbox registrations failed", "fetches failed", "malformed envelopes from a relay")

REGISTERED = {"mailboxes registered": 1}

ROUNDS: list[tuple[str, dict[type, object], dict[str, int]]] = [
    ("all well", {}, REGISTERED),
    ("no session for a registration", {Register: SessionLost("gone")}, {"mailbox registrations failed": 1}),
    ("a registration refused", {Register: Refused(ErrorCode.MAILBOX_TAKEN, "taken")}, {}),
    (
        "a garbled answer to a registration",
        {Register: ProtocolError(ErrorCode.MALFORMED, "x")},
        {"mailbox registrations failed": 1},
    ),
    ("a fetch timed out", {Fetch: CallTimeout("no answer within 15 s")}, {**REGISTERED, "fetches failed": 1}),
    ("no session for a fetch", {Fetch: SessionLost("gone")}, {**REGISTERED, "fetches failed": 1}),
    (
        "a garbled answer to a fetch",
        {Fetch: ProtocolError(ErrorCode.MALFORMED, "x")},
        {**REGISTERED, "fetches failed": 1},
    ),
    ("a fetch refused", {Fetch: Refused(ErrorCode.FORBIDDEN, "no")}, REGISTERED),
    (
        "items that are not envelopes",
        {Fetch: Fetched((), skipped=2)},
        {**REGISTERED, "malformed envelopes from a relay": 2},
    ),
]
"""What a relay does, and what the client counts for it (per round)."""


@pytest.mark.parametrize(("outcomes", "counted"), [c[1:] for c in ROUNDS], ids=[c[0] for c in ROUNDS])
def test_what_goes_wrong_with_a_relay_is_counted_and_the_client_goes_on(
    tmp_path: Path, outcomes: dict[type, object], counted: dict[str, int]
) -> None:
    async def main() -> None:
        overlay = MemoryOverlay(tmp_path)
        node = overlay.add()
        client = overlay.with_client(node, RelayClientSettings(relays=(bytes(range(32)),), homeserver=None))
        calls = Calls({**FINE, **outcomes})
        client.calls = calls  # type: ignore[assignment]
        try:
            client.start()
            await until(lambda: client.counters["fetch rounds"] >= 1, "a first round")
            client.fetch_soon()
            await until(lambda: client.counters["fetch rounds"] >= 2, "a second fetch: the client went on")
        finally:
            await overlay.close()
        watched = ("mailboxes registered", *FAILURES)
        seen = {k for k in watched if client.counters[k]}
        assert seen == set(counted)
        # Each fetch round counts a fetch's failure once.
        for name in ("fetches failed", "malformed envelopes from a relay"):
            assert client.counters[name] == 2 * counted.get(name, 0)
        assert client.counters["rounds failed"] == 0
        assert not any(isinstance(r, Ack) for r in calls.asked)  # nothing was delivered

    asyncio.run(asyncio.wait_for(main(), 60))


@run
async def test_a_round_that_fails_in_the_relay_layer_is_counted_and_tried_again(tmp_path: Path) -> None:
    overlay = MemoryOverlay(tmp_path)
    node = overlay.add()
    client = overlay.with_client(node, RelayClientSettings(relays=(bytes(range(32)),), homeserver=None))
    client.calls = Calls(FINE)  # type: ignore[assignment]
    publish = client._publish
    failures = [RecordError("cannot make the record")]

    def failing_once() -> None:
        if failures:
            raise failures.pop()
        publish()

    client._publish = failing_once  # type: ignore[method-assign]
    try:
        client.start()
        await until(lambda: client.own is not None, "the record published on the next round")
        assert client.counters["rounds failed"] == 1
        client.fetch_soon()
        await until(lambda: client.counters["fetch rounds"] >= 1, "a fetch after the failed round")
    finally:
        await overlay.close()
