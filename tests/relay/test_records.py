"""Relay records: signatures, expiry, the newest kept, and the datagram messages."""

from __future__ import annotations

import os

import pytest

from relay.records import (
    PREFIX,
    Answer,
    Lookup,
    RecordBook,
    RecordError,
    RelayEntry,
    answer_message,
    key_above,
    lookup_message,
    make_record,
    parse_record,
    store_message,
)
from router.wire.keys import Identity

NODE = Identity.generate()
ENTRY = RelayEntry(os.urandom(32), os.urandom(16))


def test_record_round_trip_and_checks() -> None:
    record = make_record(NODE, [ENTRY], 1000.0, 3600.0)
    parsed = parse_record(record.raw, 1000.0)
    assert parsed.subject == bytes(NODE.public_key) and parsed.relays == (ENTRY,)
    with pytest.raises(RecordError, match="expired"):
        parse_record(record.raw, 1000.0 + 3601)
    forged = bytearray(record.raw)
    forged[-1] ^= 1
    with pytest.raises(RecordError):
        parse_record(bytes(forged), 1000.0)
    for junk in (b"", b"\x92", os.urandom(50), b"\xdd\xff\xff\xff\xff"):
        with pytest.raises(RecordError):
            parse_record(junk, 1000.0)


def test_book_keeps_the_newest_and_is_bounded() -> None:
    book = RecordBook(size=3)
    old = make_record(NODE, [ENTRY], 1000.0, 3600.0)
    new = make_record(NODE, [], 1001.0, 3600.0)
    assert book.add(new) and not book.add(old)
    assert book.get(bytes(NODE.public_key), 1002.0) == new
    for _ in range(5):
        book.add(make_record(Identity.generate(), [ENTRY], 1000.0, 3600.0))
    assert len(book) == 3
    assert book.get(bytes(NODE.public_key), 1002.0) is None


def test_messages() -> None:
    book = RecordBook()
    record = make_record(NODE, [ENTRY], 1000.0, 3600.0)
    assert book.handle(store_message(record), 1000.0) is None
    assert book.get(record.subject, 1000.0) == record
    nonce = os.urandom(8)
    assert book.handle(lookup_message(nonce, record.subject), 1000.0) == Lookup(nonce, record.subject)
    answer = book.handle(answer_message(nonce, record), 1000.0)
    assert isinstance(answer, Answer) and answer.record == record
    assert book.handle(answer_message(nonce, None), 1000.0) == Answer(nonce, None)
    for junk in (PREFIX, PREFIX + b"\x01" + os.urandom(40), PREFIX + b"\x02short", PREFIX + b"\x09"):
        assert book.handle(junk, 1000.0) is None
    assert book.rejected == 4


def test_key_above() -> None:
    assert key_above(bytes(31) + b"\x01") == bytes(31) + b"\x02"
    assert key_above(b"\x00" + b"\xff" * 31) == b"\x01" + bytes(31)
    assert key_above(b"\xff" * 32) == bytes(32)
