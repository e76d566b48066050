"""Static peers on the event loop, with links that are only futures: dialled at
once, redialled promptly after a lost peering, not after one closed for a fault."""

from __future__ import annotations

import asyncio
from typing import cast

from router.daemon.redial import FIRST_REDIAL_MIN_S
from router.daemon.static_peers import StaticPeers
from router.links.peer import PeerLink
from router.links.uri import PeerURI

URI = "tcp://127.0.0.1:9"


class FakeLink:
    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.established: asyncio.Future[bool] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.close_reason = ""

    def close(self, reason: str) -> None:
        self.close_reason = reason
        if not self.lost.done():
            self.lost.set_result(None)


class Dialler:
    """Every dial gets a fake link, established at once."""

    def __init__(self) -> None:
        self.links: list[FakeLink] = []
        self.dialled = asyncio.Event()

    async def __call__(self, uri: PeerURI) -> PeerLink:
        link = FakeLink()
        link.established.set_result(True)
        self.links.append(link)
        self.dialled.set()
        return cast(PeerLink, link)

    async def next_dial(self, timeout: float) -> float:
        """Seconds until the next dial (TimeoutError if none within ``timeout``)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.dialled.clear()
        await asyncio.wait_for(self.dialled.wait(), timeout)
        return loop.time() - started


def lowest(low: float, high: float) -> float:
    return low


def test_a_peer_is_dialled_at_once_and_redialled_promptly_when_lost() -> None:
    async def main() -> None:
        dial = Dialler()
        peers = StaticPeers(dial, uniform=lowest)
        peers.add(URI)
        await asyncio.wait_for(dial.dialled.wait(), 0.5)  # no wait before the first dial
        assert len(dial.links) == 1
        dial.links[-1].close("connection closed by peer")
        took = await dial.next_dial(1.0)
        assert took < FIRST_REDIAL_MIN_S + 0.2
        await peers.stop()

    asyncio.run(main())


def test_a_peering_closed_for_a_fault_is_not_redialled_promptly() -> None:
    async def main() -> None:
        dial = Dialler()
        peers = StaticPeers(dial, uniform=lowest)
        peers.add(URI)
        await asyncio.wait_for(dial.dialled.wait(), 0.5)
        link = dial.links[-1]
        peers.closed_for_fault(cast(PeerLink, link))
        link.close("malformed frame")
        try:
            await dial.next_dial(1.0)
        except TimeoutError:
            pass
        else:
            raise AssertionError("redialled within a second after closing it for a fault")
        peer = peers.get(URI)
        assert peer is not None and peer.last_error == "malformed frame"
        await peers.stop()

    asyncio.run(main())
