"""Asking a relay: the sessions layer's errors and timeouts become the relay
layer's own where a request meets them, and a relay's answer is read once."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from relay.calls import RelayCalls
from relay.errors import CallError, CallTimeout, RelayError, SessionLost
from relay.messages import Refused, Register, Stats
from relay.protocol import ALPN as RELAY_ALPN
from relay.protocol import ErrorCode, ProtocolError
from relay.streams import asking, call
from router.sessions.errors import SessionError, SessionTimeout, StreamReset
from router.sessions.stream import SessionStream
from tests.overlay import MemoryOverlay

MAPPED: list[tuple[BaseException, type[RelayError]]] = [
    (SessionError("stream broken"), SessionLost),
    (SessionTimeout("no session within 1 s"), SessionLost),
    (StreamReset("reset by the other side", 7), SessionLost),
    (TimeoutError(), CallTimeout),
    (ProtocolError(ErrorCode.NO_ANSWER, "no answer"), ProtocolError),
]


@pytest.mark.parametrize(("raised", "seen"), MAPPED, ids=lambda v: type(v).__name__)
def test_what_a_request_meets_is_seen_as_the_relay_layers_own(
    raised: BaseException, seen: type[RelayError]
) -> None:
    with pytest.raises(RelayError) as caught, asking(2.0):
        raise raised
    assert type(caught.value) is seen
    if seen is not ProtocolError:
        assert isinstance(caught.value, CallError)
        assert caught.value.__cause__ is raised
        assert str(caught.value) == (str(raised) or "no answer within 2 s")


def test_a_relay_that_cannot_be_reached_is_a_lost_session(tmp_path: Path) -> None:
    async def main() -> None:
        overlay = MemoryOverlay(tmp_path)
        asker = overlay.add()
        absent = bytes(range(32))
        try:
            with pytest.raises(SessionLost):
                await call(asker.sessions, absent, Stats(bytes(16), bytes(32)), 0.2)
            with pytest.raises(SessionLost):
                await RelayCalls(asker.sessions).call(absent, Stats(bytes(16), bytes(32)), 0.2)
        finally:
            await overlay.close()

    asyncio.run(main())


def test_a_relay_that_does_not_answer_in_time_is_a_timeout_not_tried_again(tmp_path: Path) -> None:
    async def main() -> None:
        overlay = MemoryOverlay(tmp_path)
        asker, relay = overlay.add(), overlay.add()
        streams: list[SessionStream] = []

        async def silent(stream: SessionStream) -> None:
            streams.append(stream)
            await asyncio.sleep(30)

        relay.sessions.listen(RELAY_ALPN, silent)
        try:
            with pytest.raises(CallTimeout):
                await call(asker.sessions, relay.key, Stats(bytes(16), bytes(32)), 0.3)
            calls = RelayCalls(asker.sessions)
            with pytest.raises(CallTimeout):
                await calls.call(relay.key, Stats(bytes(16), bytes(32)), 0.3)
            assert calls.streams_opened == 1 and calls.idle_streams() == 0
            assert len(streams) == 2
        finally:
            await overlay.close()

    asyncio.run(main())


def test_an_answer_that_breaks_the_protocol_is_a_protocol_error(tmp_path: Path) -> None:
    async def main() -> None:
        overlay = MemoryOverlay(tmp_path)
        asker, relay = overlay.add(), overlay.add()

        async def garbled(stream: SessionStream) -> None:
            while await stream.read():  # the whole request, to the asker's end of stream
                pass
            stream.write(b"\x00\x00\x00\x02\x91\x01")  # a list, not a map
            stream.write_eof()

        relay.sessions.listen(RELAY_ALPN, garbled)
        try:
            with pytest.raises(ProtocolError) as caught:
                await call(asker.sessions, relay.key, Stats(bytes(16), bytes(32)), 2.0)
            assert caught.value.code is ErrorCode.MALFORMED
        finally:
            await overlay.close()

    asyncio.run(main())


def test_an_error_answer_is_an_answer(tmp_path: Path) -> None:
    async def main() -> None:
        overlay = MemoryOverlay(tmp_path)
        asker, relay = overlay.add(), overlay.add()
        await overlay.with_service(relay)
        try:
            answer = await call(asker.sessions, relay.key, Register(os.urandom(16), bytes(32), 1), 2.0)
            assert answer == Refused(ErrorCode.EXPIRED, "a mailbox must expire in the future")
        finally:
            await overlay.close()

    asyncio.run(main())
