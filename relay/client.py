"""The node's side of relaying: its own mailboxes, its record, and deposits for others.

* As a recipient, a node keeps one mailbox on each relay it names (``relays``
  in the config), renews them, publishes a signed record of them into key
  space, and fetches them at start and periodically: each envelope is opened,
  its sender's signature checked, its request replayed to the homeserver
  exactly as sent, and acknowledged only once the homeserver accepted it.
  Delivered ids are remembered until they expire, so a duplicate is dropped.
* As a sender, a node looks up the recipient's record (its cache, then the
  overlay), seals the envelope to the recipient, seals the deposit to the
  recipient's relay, and hands it to one of its own relays to forward, so
  that no single relay sees both the sender and the mailbox.
* Every node keeps the records it is given and answers lookups for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from relay.errors import InboxError, RelayError, RelayUnavailable
from relay.homeserver import ReplayPolicy
from relay.lookups import RecordLookups
from relay.mailboxes import load_mailboxes
from relay.protocol import ALPN as RELAY_ALPN
from relay.records import PREFIX, RelayEntry, RelayRecord, make_record
from router.logs import get_logger
from router.sessions.runtime import Sessions
from router.tasks import stop_tasks
from router.wire.keys import Identity

if TYPE_CHECKING:
    from relay.calls import RelayCalls
    from relay.inbox import Inbox

log = get_logger("pinewood.relay")

__all__ = ["PREFIX", "RELAY_ALPN", "RelayClient", "RelayClientSettings", "RelayUnavailable"]

SETTLING_S = 30.0
SETTLING_PUBLISH_INTERVAL_S = 2.0
PUBLISH_INTERVAL_S = 10.0
"""How often a node republishes its record (and soon after its place in the network changes)."""
REGISTER_INTERVAL_S = 3600.0


ROUND_RETRY_S = 5.0
"""After a round that failed, the next fetch is tried this much later."""


@dataclass(slots=True)
class _Due:
    """When the client's periodic work is next due (event-loop time)."""

    register: float = 0.0
    publish: float = 0.0
    fetch: float = 0.0


@dataclass(frozen=True, slots=True)
class RelayClientSettings:
    relays: tuple[bytes, ...]
    homeserver: tuple[str, int] | None
    fetch_interval_s: float = 60.0
    lifetime_s: float = 7 * 86400.0
    lookup_timeout_s: float = 3.0
    allow_direct: bool = False
    replay_policy: ReplayPolicy = field(default_factory=ReplayPolicy)
    """Which relayed requests reach the homeserver."""


class RelayClient:
    def __init__(
        self,
        identity: Identity,
        sessions: Sessions,
        send_datagram: Callable[[bytes, bytes], None],
        data_dir: Path,
        settings: RelayClientSettings,
        is_highest: Callable[[], bool] = lambda: False,
    ) -> None:
        self.identity = identity
        self.key = bytes(identity.public_key)
        self.sessions = sessions
        self.send_datagram = send_datagram
        self.settings = settings
        self.is_highest = is_highest
        self.directory = data_dir / "relay"
        self.counters: Counter[str] = Counter()
        self._calls: RelayCalls | None = None
        self.records = RecordLookups(self.key, send_datagram, settings.lookup_timeout_s, self.counters)
        self._tasks: list[asyncio.Task[None]] = []
        self.mailboxes = (
            load_mailboxes(self.directory / "mailboxes.json", settings.relays) if settings.relays else {}
        )
        self.registered: set[bytes] = set()
        self.inbox: Inbox | None = None
        self._wake = asyncio.Event()
        self._publish_soon = False
        self._fetch_soon = False
        self._started = 0.0
        self._stopping = False

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self.mailboxes:
            from relay.inbox import Inbox  # noqa: PLC0415  (sqlite only for a node with mailboxes)

            self.inbox = Inbox(self.directory / "inbox.db")
            self._tasks.append(asyncio.get_running_loop().create_task(self._maintain()))

    async def stop(self) -> None:
        self._stopping = True
        await stop_tasks(self._tasks)
        if self._calls is not None:
            self._calls.close()
        if self.inbox is not None:
            with contextlib.suppress(InboxError):
                await self.inbox.close()

    @property
    def calls(self) -> RelayCalls:
        """Request streams to relays, opened once the client first calls one."""
        if self._calls is None:
            from relay.calls import RelayCalls  # noqa: PLC0415

            self._calls = RelayCalls(self.sessions)
        return self._calls

    @calls.setter
    def calls(self, calls: RelayCalls) -> None:
        self._calls = calls

    @property
    def own(self) -> RelayRecord | None:
        """This node's own record, once published."""
        return self.records.own

    def datagram(self, source: bytes, destination: bytes, payload: bytes) -> None:
        """A record datagram arrived (see :meth:`RecordLookups.datagram`)."""
        self.records.datagram(source, destination, payload)

    async def lookup(self, subject: bytes, fresh: bool = False) -> RelayRecord | None:
        """The relay record of ``subject`` (see :meth:`RecordLookups.lookup`)."""
        return await self.records.lookup(subject, fresh)

    def fetch_soon(self) -> None:
        self._fetch_soon = True
        self._wake.set()

    def moved(self) -> None:
        """Our place in the tree or the snake changed: publish the record again soon."""
        self._publish_soon = True
        self._wake.set()

    async def _maintain(self) -> None:
        assert self.inbox is not None
        try:
            await self.inbox.open()
        except InboxError as exc:
            self.counters["inbox unusable"] += 1
            log.error("relay mailboxes not fetched: the inbox cannot be opened", error=str(exc))
            return
        loop = asyncio.get_running_loop()
        self._started = loop.time()
        due = _Due()
        while not self._stopping:
            try:
                await self._round(loop, due)
            except RelayError as exc:
                # Whatever a relay, an envelope or the inbox did, the client goes on.
                self.counters["rounds failed"] += 1
                log.warning("relay client round failed", error=f"{type(exc).__name__}: {exc}")
                due.fetch = loop.time() + ROUND_RETRY_S
            self._wake.clear()
            if self._publish_soon or self._fetch_soon:
                continue
            wait = max(0.05, min(due.publish, due.fetch) - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _round(self, loop: asyncio.AbstractEventLoop, due: _Due) -> None:
        """Register, publish and fetch, each if it is due."""
        now = loop.time()
        if now >= due.register or (len(self.registered) < len(self.mailboxes) and now >= due.publish):
            await self._register_all()
            due.register = now + REGISTER_INTERVAL_S
        if now >= due.publish or self._publish_soon:
            if self._publish_soon:
                self._publish_soon = False
                await asyncio.sleep(1.0)  # let the change settle
            self._publish()
            # Often while the network around us is still settling, then less.
            settling = loop.time() - self._started < SETTLING_S
            due.publish = loop.time() + (SETTLING_PUBLISH_INTERVAL_S if settling else PUBLISH_INTERVAL_S)
        if now >= due.fetch or self._fetch_soon:
            self._fetch_soon = False
            await self.fetch_all()
            due.fetch = loop.time() + self.settings.fetch_interval_s

    # ------------------------------------------------------------ our mailboxes and record

    def _publish(self) -> None:
        entries = [RelayEntry(r, self.mailboxes[r][0]) for r in self.settings.relays if r in self.registered]
        if not entries:
            return
        record = make_record(self.identity, entries, time.time(), self.settings.lifetime_s)
        # With no key above ours, key space wraps round to the lowest node, which
        # is where a lookup that finds no one above us goes next: it gets a copy.
        self.records.publish(record, self.is_highest())

    # ------------------------------------------------------------ envelopes
    #
    # What moves envelopes (relay.courier, with the relay protocol's messages and
    # calls) loads when a node first registers a mailbox or deposits for another:
    # a node that only answers record lookups never needs it.

    async def _register_all(self) -> None:
        from relay.courier import register_all  # noqa: PLC0415

        await register_all(self)

    async def deposit(self, recipient: bytes, payload: bytes) -> bytes:
        """Leave ``payload`` for ``recipient`` on one of its relays; the relay's key."""
        from relay.courier import deposit  # noqa: PLC0415

        return await deposit(self, recipient, payload)

    async def fetch_all(self) -> int:
        """Fetch every mailbox, deliver what is new, acknowledge; how many were delivered."""
        from relay.courier import fetch_all  # noqa: PLC0415

        return await fetch_all(self)
