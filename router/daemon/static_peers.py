"""The operator's static peers (configured, saved or added for this run): each
dialled at once, and redialled for as long as it is configured, on the schedule
of :mod:`router.daemon.redial` (promptly after a peering is lost, else the
reference connection manager's 5 s doubling to an hour)."""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from router.daemon.redial import RECONNECT_MIN_S, RedialSchedule, Uniform
from router.links.peer import PeerLink
from router.links.uri import PeerURI, parse_peer_uri
from router.logs import get_logger
from router.tasks import stop_tasks

log = get_logger("pinewood")


class PeerSource(enum.Enum):
    """Where a static peer came from, which decides whether it outlives a restart."""

    CONFIG = "config"  # the peers setting
    SAVED = "saved"  # added at run time and saved in the data directory
    TEMPORARY = "temporary"  # added at run time for this run only


@dataclass(slots=True)
class StaticPeer:
    uri: PeerURI
    source: PeerSource = PeerSource.CONFIG
    task: asyncio.Task[None] | None = None
    link: PeerLink | None = None
    attempts: int = 0
    last_error: str = ""
    faulted: bool = False
    """This node closed the current peering for something the peer sent."""
    covered_by: PeerLink | None = None
    """The peering the neighbour dialled, kept instead of ours as its duplicate."""


class StaticPeers:
    """The configured peers, by URI, each with a task that keeps it connected."""

    def __init__(
        self, dial: Callable[[PeerURI], Awaitable[PeerLink]], uniform: Uniform | None = None
    ) -> None:
        self._dial = dial
        self._uniform = uniform or random.Random().uniform  # jitter: no secret, no need for os.urandom
        self._peers: dict[str, StaticPeer] = {}
        self._stopping = False

    def __len__(self) -> int:
        return len(self._peers)

    def items(self) -> Iterator[tuple[str, StaticPeer]]:
        return iter(list(self._peers.items()))

    def pinned_keys(self) -> Iterator[bytes | None]:
        return (peer.uri.key for peer in self._peers.values())

    def get(self, uri: str) -> StaticPeer | None:
        return self._peers.get(uri)

    def add(self, text: str, source: PeerSource = PeerSource.CONFIG) -> PeerURI:
        uri = parse_peer_uri(text)
        key = str(uri)
        known = self._peers.get(key)
        if known is not None:
            if known.source is PeerSource.TEMPORARY:
                known.source = source  # saved now
            return uri
        peer = StaticPeer(uri, source)
        self._peers[key] = peer
        peer.task = asyncio.get_running_loop().create_task(self._keep_connected(peer))
        return uri

    def remove(self, text: str) -> StaticPeer | None:
        """Stop keeping the peer connected and close its link; the peer removed, if any."""
        peer = self._peers.pop(str(parse_peer_uri(text)), None)
        if peer is None:
            return None
        if peer.task is not None:
            peer.task.cancel()
        if peer.link is not None:
            peer.link.close("peer removed by the operator")
        return peer

    def closed_for_fault(self, link: PeerLink) -> None:
        """This node closed ``link`` for something its peer sent: if it is a static
        peer's, that peer is redialled on the reference's schedule, not promptly."""
        for peer in self._peers.values():
            if peer.link is link:
                peer.faulted = True

    def covered(self, link: PeerLink, kept: PeerLink) -> None:
        """``link``, a static peer's, was closed as a duplicate of ``kept``, which
        the neighbour dialled: that peer is not redialled while ``kept`` lasts."""
        for peer in self._peers.values():
            if peer.link is link:
                peer.covered_by = kept

    async def stop(self) -> None:
        self._stopping = True
        await stop_tasks([p.task for p in self._peers.values() if p.task is not None])

    async def _keep_connected(self, peer: StaticPeer) -> None:
        loop = asyncio.get_running_loop()
        schedule = RedialSchedule(self._uniform, configured_at=loop.time())
        while not self._stopping:
            peer.attempts += 1
            try:
                link = await self._dial(peer.uri)
                peer.link = link
                peer.faulted = False
                if await link.established:
                    schedule.up(loop.time())
                    peer.last_error = ""
                    await link.lost
                    schedule.down(loop.time(), fault=peer.faulted)
                peer.last_error = link.close_reason
            except (OSError, TimeoutError) as exc:
                # "connection refused", not "[Errno 111] Connect call failed ('127.0.0.1', 1)"
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                if isinstance(exc, TimeoutError) and not reason:
                    reason = "timed out"
                peer.last_error = (reason or type(exc).__name__).lower()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a task that dies silently would be worse
                log.exception("unexpected error dialling a peer", uri=str(peer.uri))
                peer.last_error = f"{type(exc).__name__}: {exc}"
            peer.link = None
            covering = peer.covered_by
            if covering is not None:
                # The neighbour's own dial carries the peering: wait for it to end,
                # then redial promptly, as after any lost peering.
                peer.last_error = ""
                schedule.up(loop.time())
                await covering.lost
                peer.covered_by = None
                schedule.down(loop.time())
            elif peer.last_error == "connected to ourselves":
                peer.last_error = "gave up: this address is our own node"
                log.warning("static peer is this node; not retrying", uri=str(peer.uri))
                return
            delay = schedule.next_delay(loop.time())
            # Prompt retries (several a second) are news only at debug level.
            say = log.info if delay >= RECONNECT_MIN_S else log.debug
            say(
                "peer unreachable, will retry",
                uri=str(peer.uri),
                error=peer.last_error,
                retry_in_s=round(delay, 3),
            )
            await asyncio.sleep(delay)
