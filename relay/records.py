"""Relay records: where an offline node's mail should go, kept near it in key space.

A node signs a record of its relays and its mailbox on each (with an expiry)
and keeps it on the node that answers for its key while it is away.  Traffic
for a key that is not there ends at the smallest key above it (the reference's
SNEK rule; see docs/protocol.md, "Routing"), so a node
publishes its record to the key one above its own, which lands on exactly that
node, and a sender's lookup, addressed to the absent key itself, lands there
too.  Records travel as plain overlay datagrams, not sessions (a session
cannot be made with a key that is absent); they are signed, so whoever answers
cannot forge one.  Everyone caches the records they see, newest first, bounded.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass

import msgpack

from relay.errors import RelayError
from router.wire.keys import Identity, verify_signature

PREFIX = b"\x00pinewood-record\x00"
STORE, LOOKUP, ANSWER = 1, 2, 3
SIGNATURE_CONTEXT = b"pinewood relay record v1\x00"
MAX_RELAYS = 8
MAX_RECORD_BYTES = 2048
CACHE_SIZE = 4096
NONCE_BYTES = 8


class RecordError(RelayError, ValueError):
    """A record or record message that is malformed, unsigned or stale."""


@dataclass(frozen=True, slots=True)
class RelayEntry:
    relay: bytes
    mailbox: bytes


@dataclass(frozen=True, slots=True)
class RelayRecord:
    subject: bytes
    issued_ms: int
    expires: int
    relays: tuple[RelayEntry, ...]
    raw: bytes

    def valid(self, now: float) -> bool:
        return now < self.expires


def _body(subject: bytes, issued_ms: int, expires: int, relays: tuple[RelayEntry, ...]) -> bytes:
    encoded: bytes = msgpack.packb([subject, issued_ms, expires, [[r.relay, r.mailbox] for r in relays]])
    return encoded


def make_record(identity: Identity, relays: list[RelayEntry], now: float, lifetime_s: float) -> RelayRecord:
    subject = bytes(identity.public_key)
    issued_ms, expires = int(now * 1000), int(now + lifetime_s)
    body = _body(subject, issued_ms, expires, tuple(relays))
    raw: bytes = msgpack.packb([body, identity.sign(SIGNATURE_CONTEXT + body)])
    return RelayRecord(subject, issued_ms, expires, tuple(relays), raw)


def parse_record(raw: bytes, now: float) -> RelayRecord:
    """Check a record's form, signature and expiry."""
    if len(raw) > MAX_RECORD_BYTES:
        raise RecordError("record too large")
    try:
        outer = msgpack.unpackb(
            raw, max_bin_len=MAX_RECORD_BYTES, max_array_len=4, max_map_len=0, max_str_len=0
        )
        if not (isinstance(outer, list) and len(outer) == 2 and all(isinstance(x, bytes) for x in outer)):
            raise RecordError("not a record")
        body, signature = outer
        fields = msgpack.unpackb(body, max_bin_len=64, max_array_len=MAX_RELAYS, max_map_len=0, max_str_len=0)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise RecordError(f"not a record: {exc}") from None
    if not (
        isinstance(fields, list)
        and len(fields) == 4
        and isinstance(fields[0], bytes)
        and len(fields[0]) == 32
        and isinstance(fields[1], int)
        and isinstance(fields[2], int)
        and isinstance(fields[3], list)
        and all(
            isinstance(e, list) and len(e) == 2 and all(isinstance(x, bytes) for x in e) and len(e[0]) == 32
            for e in fields[3]
        )
    ):
        raise RecordError("malformed record")
    subject, issued_ms, expires, relays = fields
    if not verify_signature(subject, SIGNATURE_CONTEXT + body, signature):
        raise RecordError("record signature does not verify")
    if expires <= now:
        raise RecordError("record expired")
    entries = tuple(RelayEntry(bytes(r), bytes(m)) for r, m in relays)
    return RelayRecord(subject, issued_ms, expires, entries, raw)


def store_message(record: RelayRecord) -> bytes:
    return PREFIX + bytes([STORE]) + record.raw


def lookup_message(nonce: bytes, subject: bytes) -> bytes:
    return PREFIX + bytes([LOOKUP]) + nonce + subject


def answer_message(nonce: bytes, record: RelayRecord | None) -> bytes:
    return PREFIX + bytes([ANSWER]) + nonce + (record.raw if record else b"")


def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


def key_above(key: bytes) -> bytes:
    """The key one above ``key`` (as a 256-bit number), wrapping at the top."""
    value = (int.from_bytes(key, "big") + 1) % (1 << 256)
    return value.to_bytes(32, "big")


@dataclass(frozen=True, slots=True)
class Lookup:
    nonce: bytes
    subject: bytes


@dataclass(frozen=True, slots=True)
class Answer:
    nonce: bytes
    record: RelayRecord | None


class RecordBook:
    """The records this node has seen: newest per subject, bounded, expiring."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._records: OrderedDict[bytes, RelayRecord] = OrderedDict()
        self.rejected = 0

    def __len__(self) -> int:
        return len(self._records)

    def get(self, subject: bytes, now: float) -> RelayRecord | None:
        record = self._records.get(subject)
        if record is None:
            return None
        if not record.valid(now):
            del self._records[subject]
            return None
        self._records.move_to_end(subject)
        return record

    def add(self, record: RelayRecord) -> bool:
        """Keep ``record`` unless we hold a newer one for its subject."""
        held = self._records.get(record.subject)
        if held is not None and held.issued_ms >= record.issued_ms:
            return False
        self._records[record.subject] = record
        self._records.move_to_end(record.subject)
        while len(self._records) > self.size:
            self._records.popitem(last=False)
        return True

    def handle(self, payload: bytes, now: float) -> Lookup | Answer | None:
        """Take in one record datagram (``PREFIX`` included).  A stored record is
        kept; a lookup or an answer is returned for the caller to act on."""
        body = payload[len(PREFIX) :]
        if not body:
            self.rejected += 1
            return None
        kind, rest = body[0], body[1:]
        try:
            if kind == STORE:
                self.add(parse_record(rest, now))
                return None
            if kind == LOOKUP and len(rest) == NONCE_BYTES + 32:
                return Lookup(rest[:NONCE_BYTES], rest[NONCE_BYTES:])
            if kind == ANSWER and len(rest) >= NONCE_BYTES:
                raw = rest[NONCE_BYTES:]
                record = parse_record(raw, now) if raw else None
                if record is not None:
                    self.add(record)
                return Answer(rest[:NONCE_BYTES], record)
        except RecordError:
            pass
        self.rejected += 1
        return None
