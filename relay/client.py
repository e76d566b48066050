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
import json
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import structlog

from relay.envelope import EnvelopeError, new_id, open_envelope, seal, seal_to
from relay.errors import RelayError
from relay.protocol import ALPN as RELAY_ALPN
from relay.protocol import ProtocolError
from relay.records import (
    PREFIX,
    Answer,
    Lookup,
    RecordBook,
    RelayEntry,
    RelayRecord,
    answer_message,
    key_above,
    lookup_message,
    make_record,
    new_nonce,
    store_message,
)
from relay.service import call
from router.sessions.errors import SessionError
from router.sessions.runtime import Sessions
from router.tasks import stop_tasks
from router.wire.keys import Identity

log = structlog.get_logger("relay")

__all__ = ["PREFIX", "RELAY_ALPN", "RelayClient", "RelayClientSettings", "RelayUnavailable"]

CALL_TIMEOUT_S = 15.0
LOWEST = bytes(32)
SETTLING_S = 30.0
SETTLING_PUBLISH_INTERVAL_S = 2.0
PUBLISH_INTERVAL_S = 10.0
"""How often a node republishes its record (and soon after its place in the network changes)."""
REGISTER_INTERVAL_S = 3600.0


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


async def replay(address: tuple[str, int], request: bytes, timeout: float) -> int:
    """Send ``request`` (one whole HTTP/1.1 request) to the homeserver; its status."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(*address), timeout)
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status = int(head.split(b" ", 2)[1])
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                await asyncio.wait_for(reader.readexactly(int(line.split(b":", 1)[1])), timeout)
        return status
    finally:
        writer.close()


class Inbox:
    """Ids of envelopes delivered to the homeserver, until they expire."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS delivered (id BLOB PRIMARY KEY, expires REAL NOT NULL)")

    def seen(self, envelope_id: bytes) -> bool:
        return self.db.execute("SELECT 1 FROM delivered WHERE id = ?", (envelope_id,)).fetchone() is not None

    def add(self, envelope_id: bytes, expires: float) -> None:
        self.db.execute("INSERT OR IGNORE INTO delivered (id, expires) VALUES (?, ?)", (envelope_id, expires))

    def sweep(self, now: float) -> None:
        self.db.execute("DELETE FROM delivered WHERE expires < ?", (now,))

    def close(self) -> None:
        self.db.close()


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
        self.book = RecordBook()
        self.own: RelayRecord | None = None
        self.counters: Counter[str] = Counter()
        self._lookups: dict[bytes, tuple[bytes, asyncio.Future[RelayRecord | None]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._mailboxes = self._load_mailboxes() if settings.relays else {}
        self.registered: set[bytes] = set()
        self._inbox: Inbox | None = None
        self._wake = asyncio.Event()
        self._publish_soon = False
        self._fetch_soon = False
        self._started = 0.0
        self._stopping = False

    # ------------------------------------------------------------ lifecycle

    def _load_mailboxes(self) -> dict[bytes, tuple[bytes, bytes]]:
        """Our mailbox (id, secret) on each relay, made once and kept (mode 0600)."""
        path = self.directory / "mailboxes.json"
        state: dict[str, Any] = {}
        if path.exists():
            with contextlib.suppress(ValueError, OSError):
                state = json.loads(path.read_text())
        changed = False
        out: dict[bytes, tuple[bytes, bytes]] = {}
        for relay in self.settings.relays:
            entry = state.get(relay.hex())
            if not (isinstance(entry, dict) and isinstance(entry.get("mailbox"), str)):
                entry = {"mailbox": os.urandom(16).hex(), "secret": os.urandom(32).hex()}
                state[relay.hex()] = entry
                changed = True
            out[relay] = (bytes.fromhex(entry["mailbox"]), bytes.fromhex(entry["secret"]))
        if changed:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(state, handle)
        return out

    def start(self) -> None:
        if self._mailboxes:
            self._inbox = Inbox(self.directory / "inbox.db")
            self._tasks.append(asyncio.get_running_loop().create_task(self._maintain()))

    async def stop(self) -> None:
        self._stopping = True
        await stop_tasks(self._tasks)
        if self._inbox is not None:
            self._inbox.close()

    def fetch_soon(self) -> None:
        self._fetch_soon = True
        self._wake.set()

    def moved(self) -> None:
        """Our place in the tree or the snake changed: publish the record again soon."""
        self._publish_soon = True
        self._wake.set()

    async def _maintain(self) -> None:
        loop = asyncio.get_running_loop()
        self._started = loop.time()
        next_register = next_publish = next_fetch = 0.0
        while not self._stopping:
            now = loop.time()
            if now >= next_register or (len(self.registered) < len(self._mailboxes) and now >= next_publish):
                await self._register_all()
                next_register = now + REGISTER_INTERVAL_S
            if now >= next_publish or self._publish_soon:
                if self._publish_soon:
                    self._publish_soon = False
                    await asyncio.sleep(1.0)  # let the change settle
                self._publish()
                # Often while the network around us is still settling, then less.
                settling = loop.time() - self._started < SETTLING_S
                next_publish = loop.time() + (SETTLING_PUBLISH_INTERVAL_S if settling else PUBLISH_INTERVAL_S)
            if now >= next_fetch or self._fetch_soon:
                self._fetch_soon = False
                await self.fetch_all()
                next_fetch = loop.time() + self.settings.fetch_interval_s
            self._wake.clear()
            if self._publish_soon or self._fetch_soon:
                continue
            wait = max(0.05, min(next_publish, next_fetch) - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    # ------------------------------------------------------------ our mailboxes and record

    async def _register_all(self) -> None:
        expires = int(time.time() + self.settings.lifetime_s)
        for relay, (mailbox, secret) in self._mailboxes.items():
            try:
                answer = await call(
                    self.sessions,
                    relay,
                    {"op": "register", "mailbox": mailbox, "secret": secret, "expires": expires},
                    CALL_TIMEOUT_S,
                )
            except (SessionError, ProtocolError, TimeoutError) as exc:
                self.counters["mailbox registrations failed"] += 1
                log.info("cannot register a mailbox", relay=relay.hex(), error=str(exc))
                continue
            if answer.get("ok"):
                self.registered.add(relay)
                self.counters["mailboxes registered"] += 1
            else:
                log.warning("relay refused our mailbox", relay=relay.hex(), answer=answer.get("message"))

    def _publish(self) -> None:
        entries = [RelayEntry(r, self._mailboxes[r][0]) for r in self.settings.relays if r in self.registered]
        if not entries:
            return
        self.own = make_record(self.identity, entries, time.time(), self.settings.lifetime_s)
        self.book.add(self.own)
        self.send_datagram(key_above(self.key), store_message(self.own))
        if self.is_highest():
            # No key above ours: key space wraps round to the lowest node, which
            # is where a lookup that finds no one above us goes next.
            self.send_datagram(LOWEST, store_message(self.own))
        self.counters["records published"] += 1

    # ------------------------------------------------------------ record datagrams

    def datagram(self, source: bytes, destination: bytes, payload: bytes) -> None:
        """A record datagram arrived, addressed to ``destination`` (us, or a key
        we stand in for while it is away)."""
        result = self.book.handle(payload, time.time())
        if isinstance(result, Lookup):
            record = self.own if result.subject == self.key else self.book.get(result.subject, time.time())
            if (
                record is None
                and source == self.key
                and destination == result.subject
                and self.key < result.subject
            ):
                # Our own lookup ended here, below the key we look for: no node
                # has a key above it.  Key space wraps: ask the lowest node.
                self.send_datagram(LOWEST, lookup_message(result.nonce, result.subject))
                return
            self.counters["lookups answered" if record else "lookups unknown"] += 1
            self.send_datagram(source, answer_message(result.nonce, record))
        elif isinstance(result, Answer):
            pending = self._lookups.get(result.nonce)
            if pending is not None and not pending[1].done():
                subject, future = pending
                if result.record is None or result.record.subject == subject:
                    future.set_result(result.record)

    async def lookup(self, subject: bytes, fresh: bool = False) -> RelayRecord | None:
        """The relay record of ``subject``: cached (unless ``fresh``), or asked of key space."""
        record = None if fresh else self.book.get(subject, time.time())
        if record is not None:
            return record
        nonce = new_nonce()
        future: asyncio.Future[RelayRecord | None] = asyncio.get_running_loop().create_future()
        self._lookups[nonce] = (subject, future)
        try:
            self.send_datagram(subject, lookup_message(nonce, subject))
            return await asyncio.wait_for(future, self.settings.lookup_timeout_s)
        except TimeoutError:
            return None
        finally:
            self._lookups.pop(nonce, None)

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
            inner = msgpack.packb(
                {"mailbox": entry.mailbox, "id": envelope_id, "expires": expires, "body": body}
            )
            sealed = seal_to(entry.relay, inner)
            hops = [r for r in self.settings.relays if r not in (entry.relay, recipient)]
            attempts: list[tuple[bytes, dict[str, Any]]] = [
                (via, {"op": "forward", "relay": entry.relay, "sealed": sealed}) for via in hops
            ]
            if not attempts and self.settings.allow_direct:
                attempts = [(entry.relay, {"op": "sealed", "sealed": sealed})]
            for via, request in attempts:
                try:
                    answer = await call(self.sessions, via, request, CALL_TIMEOUT_S)
                except (SessionError, ProtocolError, TimeoutError) as exc:
                    failures.append(f"{via.hex()[:12]}: {exc}")
                    continue
                if answer.get("ok"):
                    self.counters["envelopes deposited"] += 1
                    return entry.relay
                failures.append(f"{via.hex()[:12]}: {answer.get('code')}: {answer.get('message')}")
            if not attempts:
                failures.append("no intermediate relay of our own to forward through")
        self.counters["deposits failed"] += 1
        raise RelayUnavailable("no relay took the envelope: " + "; ".join(failures))

    # ------------------------------------------------------------ fetching our own

    async def fetch_all(self) -> int:
        """Fetch every mailbox, deliver what is new, acknowledge; how many were delivered."""
        delivered = 0
        for relay, (mailbox, secret) in self._mailboxes.items():
            with contextlib.suppress(SessionError, ProtocolError, TimeoutError, OSError):
                delivered += await self._fetch(relay, mailbox, secret)
        if self._inbox is not None:
            self._inbox.sweep(time.time())
        return delivered

    async def _fetch(self, relay: bytes, mailbox: bytes, secret: bytes) -> int:
        assert self._inbox is not None
        delivered = 0
        while True:
            answer = await call(
                self.sessions,
                relay,
                {"op": "fetch", "mailbox": mailbox, "secret": secret, "limit": 100},
                CALL_TIMEOUT_S,
            )
            if not answer.get("ok"):
                log.info("relay refused a fetch", relay=relay.hex(), answer=answer.get("message"))
                return delivered
            envelopes = answer.get("envelopes")
            if not isinstance(envelopes, list) or not envelopes:
                return delivered
            done: list[bytes] = []
            stop = False
            for item in envelopes:
                if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], bytes)):
                    continue
                envelope_id, expires, ciphertext = item
                if self._inbox.seen(envelope_id):
                    self.counters["duplicates dropped"] += 1
                    done.append(envelope_id)
                    continue
                try:
                    opened = open_envelope(self.identity, envelope_id, bytes(ciphertext))
                except EnvelopeError as exc:
                    self.counters["undeliverable envelopes"] += 1
                    log.warning("dropping an envelope that does not open", reason=str(exc))
                    done.append(envelope_id)
                    continue
                outcome = await self._deliver(opened.payload)
                if outcome is None:
                    stop = True  # keep order: try again later from here
                    break
                self._inbox.add(envelope_id, float(expires) + 86400.0)
                if outcome:
                    self.counters["envelopes delivered"] += 1
                    delivered += 1
                done.append(envelope_id)
            if done:
                await call(
                    self.sessions,
                    relay,
                    {"op": "ack", "mailbox": mailbox, "secret": secret, "ids": done},
                    CALL_TIMEOUT_S,
                )
            if stop or len(envelopes) < 100:
                return delivered

    async def _deliver(self, request: bytes) -> bool | None:
        """Replay one request: True if the homeserver took it, False if it refused
        it for good (a 4xx other than 429: retrying cannot help), None to retry later."""
        if self.settings.homeserver is None:
            self.counters["envelopes with no homeserver to take them"] += 1
            return None
        try:
            status = await replay(self.settings.homeserver, request, CALL_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
            self.counters["homeserver unreachable"] += 1
            log.info("cannot replay to the homeserver", error=str(exc))
            return None
        if 200 <= status < 300:
            return True
        self.counters[f"homeserver answered {status}"] += 1
        if 400 <= status < 500 and status != 429:
            log.warning("the homeserver refused a relayed request", status=status)
            return False
        return None
