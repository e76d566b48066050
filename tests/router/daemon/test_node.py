"""The node runtime with stand-in links: every frame with nowhere to go is
counted, with its reason, where ``/status`` and ``/metrics`` show it."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast

from router.daemon.config import load_config
from router.daemon.delivery import PING_PREFIX, PONG_PREFIX
from router.daemon.node import SENT_TO_CLOSED, UNHANDLED_FROM_CLOSED, UNSENT_AT_CLOSE, Node
from router.links.peer import PeerLink
from router.routing.outputs import Deliver, Output, SendFrame
from router.wire.keys import Identity

LINK_TYPE_REMOTE = 3


class StandInLink:
    """What the node reads of a link, and a record of what it was given."""

    def __init__(self, port: int = 0, queued: int = 0) -> None:
        self.port = port
        self.closed = False
        self.close_reason = ""
        self.outbound: str | None = None
        self.backlog: deque[bytes] = deque()
        self.waiting_sources: set[int] = set()
        self.queue_depth = queued
        self.sent: list[bytes] = []

    def send_traffic(self, source: int, data: bytes) -> None:
        self.sent.append(data)

    def send_proto(self, data: bytes) -> None:
        self.sent.append(data)


def with_node(test: Callable[[Node], Coroutine[Any, Any, None]]) -> Callable[[Path], None]:
    def wrapper(tmp_path: Path) -> None:
        async def main() -> None:
            config = load_config(flags={"data_dir": str(tmp_path), "listen": []})
            await test(Node(config, Identity.generate()))

        asyncio.run(asyncio.wait_for(main(), 60))

    wrapper.__name__ = test.__name__
    wrapper.__doc__ = test.__doc__
    return wrapper


def attach(node: Node, link: StandInLink) -> None:
    """Make ``link`` the node's peering with a new key."""
    key = Identity.generate().public_key
    link.port, _ = node.core.add_peer(key, LINK_TYPE_REMOTE, node.loop.time())
    node.links[link.port] = cast(PeerLink, link)


@with_node
async def test_frames_for_a_link_that_is_closing_are_counted_not_queued(node: Node) -> None:
    link = StandInLink()
    attach(node, link)
    frames: list[Output] = [SendFrame(link.port, b"traffic", True), SendFrame(link.port, b"protocol", False)]
    node._apply(frames, None)
    assert link.sent == [b"traffic", b"protocol"]  # open: they go
    link.closed = True  # closed by us, its transport not yet gone
    node._apply(frames, None)
    assert len(link.sent) == 2
    assert node.counters[SENT_TO_CLOSED] == 2


@with_node
async def test_frames_left_in_a_lost_links_queue_or_backlog_are_counted(node: Node) -> None:
    link = StandInLink(queued=3)
    attach(node, link)
    link.backlog.extend([b"a", b"b"])
    link.closed = True
    node.link_lost(cast(PeerLink, link))
    assert node.counters[UNSENT_AT_CLOSE] == 3
    assert link.port not in node.links and link.port not in node.core.peers
    # Frames read from it before it closed, not handled yet:
    node.frames_received(cast(PeerLink, link), [b"c"])
    node._work_backlog(cast(PeerLink, link))
    assert node.counters[UNHANDLED_FROM_CLOSED] == 3 and not link.backlog


class SourceLink(StandInLink):
    """A link the node may pause and resume reading from."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = True

    def resume_reading(self) -> None:
        self.reading = True


class BusyLink(StandInLink):
    """A link with ``queued`` bytes of traffic waiting from each source port."""

    def __init__(self, pause_bytes: int) -> None:
        super().__init__()
        self.pause_bytes = pause_bytes
        self.queued: dict[int, int] = {}
        self.traffic = self

    def port_size(self, port: int) -> int:
        return self.queued.get(port, 0)


@with_node
async def test_a_paused_source_is_read_again_once_its_frames_have_drained(node: Node) -> None:
    busy, heavy, light = BusyLink(pause_bytes=1000), SourceLink(), SourceLink()
    for link in (busy, heavy, light):
        attach(node, link)
    heavy.reading = light.reading = False
    busy.waiting_sources = {heavy.port, light.port}
    busy.queued = {heavy.port: 500, light.port: 499}  # half the bound and just under
    node.link_writable(cast(PeerLink, busy))  # the transport drained, not the fair queue
    assert (heavy.reading, light.reading) == (False, True)
    assert busy.waiting_sources == {heavy.port}
    busy.queued[heavy.port] = 0
    node.link_writable(cast(PeerLink, busy))
    assert heavy.reading and not busy.waiting_sources
    # A link that is lost frees whoever waited for it, whatever stood queued.
    heavy.reading = False
    busy.waiting_sources = {heavy.port}
    busy.queued[heavy.port] = 10_000
    busy.closed = True
    node.link_lost(cast(PeerLink, busy))
    assert heavy.reading


@with_node
async def test_a_ping_to_a_key_that_is_away_is_counted(node: Node) -> None:
    away = Identity.generate().public_key
    assert await node.ping(away, 0.01) is None
    status = {**node.core.drops, **node.counters}
    assert status.get("frames for absent keys", 0) + status.get("no route", 0) == 1


@with_node
async def test_a_pong_with_no_ping_waiting_is_counted(node: Node) -> None:
    other = Identity.generate().public_key
    node.delivery.deliver(Deliver(other, node.identity.public_key, PONG_PREFIX + b"12345678"))
    assert node.counters["pongs for no ping waiting"] == 1
    # A ping is answered, and counted nowhere as a drop.
    node.delivery.deliver(Deliver(other, node.identity.public_key, PING_PREFIX + b"12345678"))
    assert node.counters["pongs for no ping waiting"] == 1
