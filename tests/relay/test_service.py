"""The relay service's answers, against a real SQLite store: the protocol and its abuse.

Requests go in as older builds' clients wrote them (dicts, msgpack'd) and
answers are read back as those clients read them (the map on the wire), so
these tests hold the service to the wire as it was."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import msgpack
import pytest

from relay import service as service_module
from relay.envelope import seal_to
from relay.errors import CallTimeout, SessionLost
from relay.messages import Answer, Refused, Stored, decode_answer, encode
from relay.messages import Sealed as SealedRequest
from relay.protocol import ALPN, ErrorCode, ProtocolError
from relay.service import RelayLimits, RelayService
from relay.stores.sqlite import SQLiteStore
from router.sessions.runtime import Sessions
from router.wire.keys import Identity

PEER = os.urandom(32)


def with_service(
    tmp_path: Path,
    test: Callable[[RelayService], Coroutine[Any, Any, None]],
    limits: RelayLimits | None = None,
) -> None:
    async def main() -> None:
        identity = Identity.generate()
        store = SQLiteStore(str(tmp_path / "relay.db"))
        await store.open()
        sessions = Sessions(identity, [ALPN], lambda key, payload: None)
        try:
            await test(RelayService(identity, store, sessions, limits or RelayLimits()))
        finally:
            await sessions.close()
            await store.close()

    asyncio.run(main())


def on_the_wire(answer: Answer) -> dict[str, Any]:
    """An answer's map, as a client of an older build reads it off the stream."""
    framed = encode(answer)
    assert int.from_bytes(framed[:4], "big") == len(framed) - 4
    value = msgpack.unpackb(framed[4:])
    assert isinstance(value, dict)
    return value


async def ask(service: RelayService, request: dict[str, Any], peer: bytes = PEER) -> dict[str, Any]:
    return on_the_wire(await service.answer(peer, msgpack.packb(request)))


async def register(service: RelayService) -> tuple[bytes, bytes]:
    box, secret = os.urandom(16), os.urandom(32)
    answer = await ask(
        service, {"op": "register", "mailbox": box, "secret": secret, "expires": int(time.time()) + 3600}
    )
    assert answer["ok"], answer
    return box, secret


def deposit(box: bytes, body: bytes | None = None, expires: int | None = None) -> dict[str, Any]:
    return {
        "op": "deposit",
        "mailbox": box,
        "id": os.urandom(16),
        "expires": expires or int(time.time()) + 3600,
        "body": body if body is not None else os.urandom(1024),
    }


def test_deposit_fetch_ack(tmp_path: Path) -> None:
    async def test(service: RelayService) -> None:
        box, secret = await register(service)
        request = deposit(box)
        assert (await ask(service, request)) == {"ok": True, "stored": True}
        assert (await ask(service, request)) == {"ok": True, "stored": False}  # a retry
        fetched = await ask(service, {"op": "fetch", "mailbox": box, "secret": secret, "limit": 10})
        assert [e[0] for e in fetched["envelopes"]] == [request["id"]]
        acked = await ask(service, {"op": "ack", "mailbox": box, "secret": secret, "ids": [request["id"]]})
        assert acked == {"ok": True, "removed": 1}
        replay = await ask(service, {"op": "ack", "mailbox": box, "secret": secret, "ids": [request["id"]]})
        assert replay == {"ok": True, "removed": 0}

    with_service(tmp_path, test)


def test_abuse_gets_clear_errors_and_changes_nothing(tmp_path: Path) -> None:
    async def test(service: RelayService) -> None:
        box, secret = await register(service)
        cases = [
            (deposit(box, body=os.urandom(1000)), "bad-size"),
            (deposit(box, expires=int(time.time()) - 1), "expired"),
            (deposit(os.urandom(16)), "unknown-mailbox"),
            ({"op": "fetch", "mailbox": box, "secret": os.urandom(32), "limit": 10}, "forbidden"),
            ({"op": "ack", "mailbox": box, "secret": os.urandom(32), "ids": []}, "forbidden"),
            ({"op": "ack", "mailbox": box, "secret": secret, "ids": [b"short"]}, "malformed"),
            ({"op": "deposit", "mailbox": box}, "malformed"),
            ({"op": "deposit", "mailbox": "text", "id": 1, "expires": 1, "body": 1}, "malformed"),
            ({"op": "steal"}, "unknown-op"),
            ({"op": "sealed", "sealed": os.urandom(200)}, "bad-seal"),
            ({"op": "forward", "relay": bytes(service.identity.public_key), "sealed": b""}, "bad-forward"),
        ]
        for request, code in cases:
            answer = await ask(service, request)
            assert answer["ok"] is False and answer["code"] == code, (request.get("op"), answer)
            assert answer["message"]
        for raw in (b"", b"\xc1", b"\x91" * 5000 + b"\xc0", msgpack.packb([1, 2]), b"\xdf\xff\xff\xff\xff"):
            answer = on_the_wire(await service.answer(PEER, raw))
            assert answer["ok"] is False and answer["code"] == "malformed"
        fetched = await ask(service, {"op": "fetch", "mailbox": box, "secret": secret, "limit": 10})
        assert fetched["envelopes"] == []
        assert service.counters["rejected: malformed"] >= 8

    with_service(tmp_path, test)


def test_over_quota(tmp_path: Path) -> None:
    async def test(service: RelayService) -> None:
        box, _ = await register(service)
        for _ in range(3):
            assert (await ask(service, deposit(box)))["ok"]
        answer = await ask(service, deposit(box))
        assert answer["code"] == "over-quota"

    with_service(tmp_path, test, RelayLimits(mailbox_max_count=3))


def test_sealed_deposit_through_an_intermediate_reveals_no_mailbox(tmp_path: Path) -> None:
    async def test(service: RelayService) -> None:
        box, secret = await register(service)
        inner = deposit(box)
        del inner["op"]
        sealed = seal_to(bytes(service.identity.public_key), msgpack.packb(inner))
        assert box not in sealed
        answer = await ask(service, {"op": "sealed", "sealed": sealed}, peer=os.urandom(32))
        assert answer == {"ok": True, "stored": True}
        fetched = await ask(service, {"op": "fetch", "mailbox": box, "secret": secret, "limit": 10})
        assert [e[0] for e in fetched["envelopes"]] == [inner["id"]]

    with_service(tmp_path, test)


def test_rate_limit_and_mailboxes_per_node(tmp_path: Path) -> None:
    async def test(service: RelayService) -> None:
        for _ in range(2):
            await register(service)
        box = os.urandom(16)
        expires = int(time.time()) + 60
        answer = await ask(
            service, {"op": "register", "mailbox": box, "secret": os.urandom(32), "expires": expires}
        )
        assert answer["code"] == "too-many-mailboxes"
        codes = [(await ask(service, {"op": "steal"}, peer=b"x" * 32))["code"] for _ in range(10)]
        assert "rate-limited" in codes

    with_service(tmp_path, test, RelayLimits(mailboxes_per_node=2, requests_per_second=1, burst=5))


def test_an_answer_is_framed_with_its_length_and_read_back_as_it_was() -> None:
    framed = encode(Stored(True))
    assert int.from_bytes(framed[:4], "big") == len(framed) - 4
    assert decode_answer(framed[4:], SealedRequest(b"")) == Stored(True)


def test_every_refusal_is_counted_by_its_code(tmp_path: Path) -> None:
    async def test(service: RelayService) -> None:
        answer = await service.answer(PEER, msgpack.packb({"op": "steal"}))
        assert isinstance(answer, Refused) and answer.code == "unknown-op"
        await service.answer(PEER, b"\xc1")
        assert service.counters["rejected: unknown-op"] == 1
        assert service.counters["rejected: malformed"] == 1
        await register(service)
        assert service.counters["register ok"] == 1

    with_service(tmp_path, test)


FORWARDED: list[tuple[str, object, dict[str, Any]]] = [
    ("stored", Stored(True), {"ok": True, "stored": True}),
    ("a duplicate", Stored(False), {"ok": True, "stored": False}),
    (
        "refused",
        Refused(ErrorCode.OVER_QUOTA, "the mailbox is full"),
        {"ok": False, "code": "over-quota", "message": "the mailbox is full"},
    ),
    (
        "refused with a code this build does not know",
        Refused("a-newer-code", "why"),
        {"ok": False, "code": "a-newer-code", "message": "why"},
    ),
    (
        "no session",
        SessionLost("no session with the relay"),
        {
            "ok": False,
            "code": "relay-unreachable",
            "message": "cannot reach the next relay: no session with the relay",
        },
    ),
    (
        "no answer in time",
        CallTimeout("no answer within 15 s"),
        {
            "ok": False,
            "code": "relay-unreachable",
            "message": "cannot reach the next relay: no answer within 15 s",
        },
    ),
    (
        "a garbled answer",
        ProtocolError(ErrorCode.MALFORMED, "a message is a map"),
        {
            "ok": False,
            "code": "relay-unreachable",
            "message": "the next relay answered badly: a message is a map",
        },
    ),
]


@pytest.mark.parametrize(("outcome", "expected"), [c[1:] for c in FORWARDED], ids=[c[0] for c in FORWARDED])
def test_a_forward_passes_the_next_relays_answer_back_and_maps_its_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outcome: object, expected: dict[str, Any]
) -> None:
    next_relay = os.urandom(32)
    asked: list[tuple[bytes, object]] = []

    async def call(sessions: Sessions, relay: bytes, request: object, timeout: float) -> object:
        asked.append((relay, request))
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(service_module, "call", call)

    async def test(service: RelayService) -> None:
        answer = await ask(service, {"op": "forward", "relay": next_relay, "sealed": b"sealed"})
        assert answer == expected
        assert asked == [(next_relay, SealedRequest(b"sealed"))]
        counted = "forward ok" if expected["ok"] else f"rejected: {expected['code']}"
        assert service.counters[counted] == 1
        assert service.counters["forwards"] == (0 if isinstance(outcome, Exception) else 1)

    with_service(tmp_path, test)
