"""The bounded connection table of the gateway and the admin API."""

from __future__ import annotations

import asyncio
from typing import cast

from router.http.connection_table import ConnectionTable


class FakeTransport:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


def transports(n: int) -> list[FakeTransport]:
    return [FakeTransport() for _ in range(n)]


def as_transport(t: FakeTransport) -> asyncio.WriteTransport:
    return cast(asyncio.WriteTransport, t)


def test_the_oldest_idle_connection_makes_way() -> None:
    table = ConnectionTable(3)
    a, b, c, d = transports(4)
    for t in (a, b, c):
        assert table.admit(as_transport(t))
    table.busy(as_transport(a))  # a made a request: never evicted
    assert table.admit(as_transport(d))
    assert (a.aborted, b.aborted, c.aborted) == (False, True, False)
    assert table.evicted == 1
    table.release(as_transport(b))  # b's handler unwinds
    assert table.active == 3


def test_a_newcomer_is_turned_away_only_when_every_connection_is_busy() -> None:
    table = ConnectionTable(2)
    a, b, c = transports(3)
    for t in (a, b):
        assert table.admit(as_transport(t))
        table.busy(as_transport(t))
    assert not table.admit(as_transport(c))
    assert not (a.aborted or b.aborted)
    table.release(as_transport(a))
    assert table.admit(as_transport(c))
