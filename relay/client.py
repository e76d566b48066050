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

from relay.calls import RelayCalls
from relay.envelope import EnvelopeError, new_id, open_envelope, seal, seal_to
from relay.errors import CallError, InboxError, RelayError
from relay.homeserver import Outcome, ReplayPolicy, deliver
from relay.lookups import RecordLookups
from relay.mailboxes import load_mailboxes
from relay.messages import Ack, Deposit, Fetch, Forward, Refused, Register, Sealed, encode_sealed_deposit
from relay.protocol import ALPN as RELAY_ALPN
from relay.protocol import ProtocolError
from relay.records import PREFIX, RelayEntry, RelayRecord, make_record
from router.logs import get_logger
from router.sessions.runtime import Sessions
from router.tasks import stop_tasks
from router.wire.keys import Identity

if TYPE_CHECKING:
    from relay.inbox import Inbox

log = get_logger("pinewood.relay")

__all__ = ["PREFIX", "RELAY_ALPN", "RelayClient", "RelayClientSettings", "RelayUnavailable"]

CALL_TIMEOUT_S = 15.0
SETTLING_S = 30.0
SETTLING_PUBLISH_INTERVAL_S = 2.0
PUBLISH_INTERVAL_S = 10.0
"""How often a node republishes its record (and soon after its place in the network changes)."""
REGISTER_INTERVAL_S = 3600.0
FETCH_LIMIT = 100
"""Envelopes asked for in one fetch; a full answer means more may be waiting."""


ROUND_RETRY_S = 5.0
"""After a round that failed, the next fetch is tried this much later."""


@dataclass(slots=True)
class _Due:
    """When the client's periodic work is next due (event-loop time)."""

    register: float = 0.0
    publish: float = 0.0
    fetch: float = 0.0


class RelayUnavailable(RelayError):
    """No relay would take the deposit (no record, no reachable relay, no intermediate)."""


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
        self.calls = RelayCalls(sessions)
        self.records = RecordLookups(self.key, send_datagram, settings.lookup_timeout_s, self.counters)
        self._tasks: list[asyncio.Task[None]] = []
        self._mailboxes = (
            load_mailboxes(self.directory / "mailboxes.json", settings.relays) if settings.relays else {}
        )
        self.registered: set[bytes] = set()
        self._inbox: Inbox | None = None
        self._wake = asyncio.Event()
        self._publish_soon = False
        self._fetch_soon = False
        self._started = 0.0
        self._stopping = False

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._mailboxes:
            from relay.inbox import Inbox  # noqa: PLC0415  (sqlite only for a node with mailboxes)

            self._inbox = Inbox(self.directory / "inbox.db")
            self._tasks.append(asyncio.get_running_loop().create_task(self._maintain()))

    async def stop(self) -> None:
        self._stopping = True
        await stop_tasks(self._tasks)
        self.calls.close()
        if self._inbox is not None:
            with contextlib.suppress(InboxError):
                await self._inbox.close()

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
        assert self._inbox is not None
        try:
            await self._inbox.open()
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
        if now >= due.register or (len(self.registered) < len(self._mailboxes) and now >= due.publish):
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

    async def _register_all(self) -> None:
        expires = int(time.time() + self.settings.lifetime_s)
        for relay, (mailbox, secret) in self._mailboxes.items():
            try:
                answer = await self.calls.call(relay, Register(mailbox, secret, expires), CALL_TIMEOUT_S)
            except (CallError, ProtocolError) as exc:
                self.counters["mailbox registrations failed"] += 1
                log.info("cannot register a mailbox", relay=relay.hex(), error=str(exc))
                continue
            if isinstance(answer, Refused):
                log.warning("relay refused our mailbox", relay=relay.hex(), answer=answer.message)
            else:
                self.registered.add(relay)
                self.counters["mailboxes registered"] += 1

    def _publish(self) -> None:
        entries = [RelayEntry(r, self._mailboxes[r][0]) for r in self.settings.relays if r in self.registered]
        if not entries:
            return
        record = make_record(self.identity, entries, time.time(), self.settings.lifetime_s)
        # With no key above ours, key space wraps round to the lowest node, which
        # is where a lookup that finds no one above us goes next: it gets a copy.
        self.records.publish(record, self.is_highest())

    # ------------------------------------------------------------ depositing for others

    async def deposit(self, recipient: bytes, payload: bytes) -> bytes:
        """Leave ``payload`` for ``recipient`` on one of its relays; the relay's key."""
        record = await self.lookup(recipient)
        if record is None or not record.relays:
            self.counters["deposits without a record"] += 1
            raise RelayUnavailable("the destination has published no relays that this node can find")
        envelope_id = new_id()
        now = time.time()
        body = seal(self.identity, recipient, envelope_id, int(now), payload)
        expires = int(now + self.settings.lifetime_s)
        failures = []
        for entry in record.relays:
            inner = encode_sealed_deposit(Deposit(entry.mailbox, envelope_id, expires, body))
            sealed = seal_to(entry.relay, inner)
            hops = [r for r in self.settings.relays if r not in (entry.relay, recipient)]
            attempts: list[tuple[bytes, Forward | Sealed]] = [
                (via, Forward(entry.relay, sealed)) for via in hops
            ]
            if not attempts and self.settings.allow_direct:
                attempts = [(entry.relay, Sealed(sealed))]
            for via, request in attempts:
                try:
                    answer = await self.calls.call(via, request, CALL_TIMEOUT_S)
                except (CallError, ProtocolError) as exc:
                    failures.append(f"{via.hex()[:12]}: {exc}")
                    continue
                if isinstance(answer, Refused):
                    failures.append(f"{via.hex()[:12]}: {answer.code}: {answer.message}")
                    continue
                self.counters["envelopes deposited"] += 1
                return entry.relay
            if not attempts:
                failures.append("no intermediate relay of our own to forward through")
        self.counters["deposits failed"] += 1
        raise RelayUnavailable("no relay took the envelope: " + "; ".join(failures))

    # ------------------------------------------------------------ fetching our own

    async def fetch_all(self) -> int:
        """Fetch every mailbox, deliver what is new, acknowledge; how many were delivered."""
        delivered = 0
        for relay, (mailbox, secret) in self._mailboxes.items():
            try:
                delivered += await self._fetch(relay, mailbox, secret)
            except (CallError, ProtocolError, InboxError) as exc:
                self.counters["fetches failed"] += 1
                log.debug("cannot fetch a mailbox", relay=relay.hex(), error=str(exc))
        if self._inbox is not None:
            with contextlib.suppress(InboxError):
                await self._inbox.sweep(time.time())
        self.counters["fetch rounds"] += 1
        return delivered

    async def _fetch(self, relay: bytes, mailbox: bytes, secret: bytes) -> int:
        assert self._inbox is not None
        delivered = 0
        while True:
            answer = await self.calls.call(relay, Fetch(mailbox, secret, FETCH_LIMIT), CALL_TIMEOUT_S)
            if isinstance(answer, Refused):
                log.info("relay refused a fetch", relay=relay.hex(), answer=answer.message)
                return delivered
            if not answer.envelopes and not answer.skipped:
                return delivered
            if answer.skipped:
                self.counters["malformed envelopes from a relay"] += answer.skipped
            done: list[bytes] = []
            stop = False
            for envelope in answer.envelopes:
                envelope_id = envelope.envelope_id
                if await self._inbox.seen(envelope_id):
                    self.counters["duplicates dropped"] += 1
                    done.append(envelope_id)
                    continue
                try:
                    opened = open_envelope(self.identity, envelope_id, envelope.body)
                except EnvelopeError as exc:
                    self.counters["undeliverable envelopes"] += 1
                    log.warning("dropping an envelope that does not open", reason=str(exc))
                    done.append(envelope_id)
                    continue
                outcome = await deliver(
                    self.settings.homeserver,
                    opened.payload,
                    CALL_TIMEOUT_S,
                    self.counters,
                    opened.sender,
                    self.settings.replay_policy,
                )
                if outcome is Outcome.LATER:
                    stop = True  # keep order: try again later from here
                    break
                await self._inbox.add(envelope_id, float(envelope.expires) + 86400.0)
                if outcome is Outcome.TAKEN:
                    self.counters["envelopes delivered"] += 1
                    delivered += 1
                done.append(envelope_id)
            if done:
                await self.calls.call(relay, Ack(mailbox, secret, tuple(done)), CALL_TIMEOUT_S)
            if stop or len(answer.envelopes) + answer.skipped < FETCH_LIMIT:
                return delivered
