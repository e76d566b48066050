"""Relay records in key space: the records this node holds for others, lookups
it answers, and its own lookups waiting for an answer.

A record is stored at the node whose key is next above its subject's, and a
lookup for a subject is sent towards the subject's key, so it ends at the
subject itself (if it is up) or at the node that stands in for it while away.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

from relay.records import (
    Answer,
    Lookup,
    RecordBook,
    RelayRecord,
    answer_message,
    key_above,
    lookup_message,
    new_nonce,
    store_message,
)

LOWEST = bytes(32)
"""Where key space wraps round to: a record or lookup with no key above it goes
to the lowest node next."""

SendDatagram = Callable[[bytes, bytes], None]
"""Send a payload towards a key over the overlay (destination key, payload)."""


class RecordLookups:
    """This node's part of the record directory in key space."""

    def __init__(
        self, key: bytes, send_datagram: SendDatagram, timeout_s: float, counters: Counter[str]
    ) -> None:
        self.key = key
        self.send_datagram = send_datagram
        self.timeout_s = timeout_s
        self.counters = counters
        self.book = RecordBook()
        """The records this node was given to keep (and its own)."""
        self.own: RelayRecord | None = None
        """This node's own record, once published."""
        self._pending: dict[bytes, tuple[bytes, asyncio.Future[RelayRecord | None]]] = {}

    def publish(self, record: RelayRecord, is_highest: bool) -> None:
        """Keep ``record`` as our own and send it to the node above our key
        (and, if no key is above ours, round to the lowest node as well)."""
        self.own = record
        self.book.add(record)
        self.send_datagram(key_above(self.key), store_message(record))
        if is_highest:
            self.send_datagram(LOWEST, store_message(record))
        self.counters["records published"] += 1

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
            pending = self._pending.get(result.nonce)
            if pending is not None and not pending[1].done():
                subject, future = pending
                if result.record is None or result.record.subject == subject:
                    future.set_result(result.record)

    async def lookup(self, subject: bytes, fresh: bool = False) -> RelayRecord | None:
        """The relay record of ``subject``: cached (unless ``fresh``), or asked
        of key space; None if no answer names one within the timeout."""
        record = None if fresh else self.book.get(subject, time.time())
        if record is not None:
            return record
        nonce = new_nonce()
        future: asyncio.Future[RelayRecord | None] = asyncio.get_running_loop().create_future()
        self._pending[nonce] = (subject, future)
        try:
            self.send_datagram(subject, lookup_message(nonce, subject))
            return await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            return None
        finally:
            self._pending.pop(nonce, None)
