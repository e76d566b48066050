"""Requests to a relay on kept streams, over the in-memory overlay, against a
real relay service: streams are used again, dead ones are replaced, idle ones
expire, and none is kept past the bound."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from relay import calls as calls_module
from relay.calls import IDLE_STREAMS_PER_RELAY, STREAM_IDLE_S, RelayCalls
from relay.messages import Deposit, Register, Stored
from relay.protocol import ALPN as RELAY_ALPN
from relay.streams import REQUEST_TIMEOUT_S
from router.sessions.stream import SessionStream
from tests.overlay import MemoryOverlay


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def register(box: bytes, secret: bytes) -> Register:
    return Register(box, secret, int(time.time()) + 3600)


def deposit(box: bytes) -> Deposit:
    return Deposit(box, os.urandom(16), int(time.time()) + 3600, os.urandom(1024))  # an envelope size


def test_requests_go_one_after_another_on_a_kept_stream(tmp_path: Path) -> None:
    async def main() -> None:
        overlay = MemoryOverlay(tmp_path)
        asker, relay = overlay.add(), overlay.add()
        await overlay.with_service(relay)
        try:
            clock = Clock()
            calls = RelayCalls(asker.sessions, clock)
            box = os.urandom(16)
            await calls.call(relay.key, register(box, os.urandom(32)), 5.0)
            for _ in range(20):
                assert await calls.call(relay.key, deposit(box), 5.0) == Stored(True)
            assert calls.streams_opened == 1 and calls.streams_reused == 20
            assert calls.idle_streams() == 1
            # Requests at once each need a stream: no more are kept than the bound.
            many = 2 * IDLE_STREAMS_PER_RELAY
            answers = await asyncio.gather(*(calls.call(relay.key, deposit(box), 5.0) for _ in range(many)))
            assert answers == [Stored(True)] * many
            assert calls.idle_streams() == IDLE_STREAMS_PER_RELAY
            calls.close()
            assert calls.idle_streams() == 0
        finally:
            await overlay.close()

    asyncio.run(main())


def test_a_stream_idle_too_long_is_not_used_again(tmp_path: Path) -> None:
    async def main() -> None:
        overlay = MemoryOverlay(tmp_path)
        asker, relay = overlay.add(), overlay.add()
        await overlay.with_service(relay)
        try:
            clock = Clock()
            calls = RelayCalls(asker.sessions, clock)
            box = os.urandom(16)
            await calls.call(relay.key, register(box, os.urandom(32)), 5.0)
            clock.now += STREAM_IDLE_S
            assert await calls.call(relay.key, deposit(box), 5.0) == Stored(True)
            assert calls.streams_opened == 2 and calls.streams_reused == 0
        finally:
            await overlay.close()

    asyncio.run(main())


def test_a_kept_stream_known_dead_is_skipped(tmp_path: Path) -> None:
    async def main() -> None:
        overlay = MemoryOverlay(tmp_path)
        asker, relay = overlay.add(), overlay.add()
        await overlay.with_service(relay)
        try:
            calls = RelayCalls(asker.sessions, Clock())
            box = os.urandom(16)
            await calls.call(relay.key, register(box, os.urandom(32)), 5.0)
            calls._idle[relay.key][0][0].abort()
            assert await calls.call(relay.key, deposit(box), 5.0) == Stored(True)
            assert calls.streams_opened == 2 and calls.streams_reused == 0
        finally:
            await overlay.close()

    asyncio.run(main())


def test_a_kept_stream_found_dead_on_use_is_replaced_and_the_request_answered(tmp_path: Path) -> None:
    """The relay ended the kept stream in a way that reaches the asker only when
    it sends on it: the request goes once more on a fresh stream and is answered."""

    async def main() -> None:
        overlay = MemoryOverlay(tmp_path)
        asker, relay = overlay.add(), overlay.add()
        service = await overlay.with_service(relay)
        served: list[SessionStream] = []

        async def serve(stream: SessionStream) -> None:
            served.append(stream)
            await service.handle(stream)

        relay.sessions.listen(RELAY_ALPN, serve)
        try:
            calls = RelayCalls(asker.sessions, Clock())
            box = os.urandom(16)
            await calls.call(relay.key, register(box, os.urandom(32)), 5.0)
            served[0].write_eof()  # the relay will not answer on this stream again
            # Perhaps taken on the first stream, unanswered there: taken again, not stored twice.
            assert isinstance(await calls.call(relay.key, deposit(box), 5.0), Stored)
            assert calls.streams_opened == 2 and calls.streams_reused == 1
            assert len(served) == 2
        finally:
            await overlay.close()

    asyncio.run(main())


def test_a_kept_stream_is_given_up_before_the_relay_gives_up_waiting_on_it() -> None:
    assert calls_module.STREAM_IDLE_S < REQUEST_TIMEOUT_S


def test_a_kept_stream_whose_session_went_quiet_is_not_trusted_with_a_request(tmp_path: Path) -> None:
    """A session quiet for a while is probed before a new stream goes on it; a
    kept stream must not skip that, so the request goes through open_stream."""

    async def main() -> None:
        overlay = MemoryOverlay(tmp_path)
        asker, relay = overlay.add(), overlay.add()
        await overlay.with_service(relay)
        try:
            calls = RelayCalls(asker.sessions, Clock())
            box = os.urandom(16)
            await calls.call(relay.key, register(box, os.urandom(32)), 5.0)
            kept = calls._idle[relay.key][0][0]
            assert asker.sessions.trusted(kept.session)
            kept.session.last_heard_at -= 10.0  # as if nothing had come from the relay for 10 s
            assert not asker.sessions.trusted(kept.session)
            assert await calls.call(relay.key, deposit(box), 5.0) == Stored(True)
            assert calls.streams_reused == 0 and calls.streams_opened == 2
        finally:
            await overlay.close()

    asyncio.run(main())
