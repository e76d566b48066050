"""The relay protocol's requests and answers (:mod:`relay.protocol`), each a
frozen record: read once, strictly, where bytes become a message, and written
once where it is sent.

Each record writes its own map (:meth:`wire`: its fields in the order older
builds wrote them, so the bytes are the same) and reads it back (``read``,
which takes every field it has and nothing else).  A request also reads its
own answer: the caller knows what it asked, and so what a success looks like.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from relay.envelope import ID_BYTES
from relay.protocol import (
    KEY_BYTES,
    MAX_UINT,
    SECRET_BYTES,
    ErrorCode,
    Fields,
    Op,
    error_code,
    frame,
    pack,
    unpack,
)

# ------------------------------------------------------------------ answers


@dataclass(frozen=True, slots=True)
class Registered:
    """A mailbox made or renewed, until ``expires`` (the relay may shorten it), with its quota."""

    expires: int
    max_count: int
    max_bytes: int

    def wire(self) -> dict[str, object]:
        return {"ok": True, "expires": self.expires, "max_count": self.max_count, "max_bytes": self.max_bytes}

    @classmethod
    def read(cls, fields: Fields) -> Registered:
        return cls(fields.uint("expires"), fields.uint("max_count"), fields.uint("max_bytes"))


@dataclass(frozen=True, slots=True)
class Stored:
    """A deposit taken; ``stored`` is False if the relay held that envelope already."""

    stored: bool

    def wire(self) -> dict[str, object]:
        return {"ok": True, "stored": self.stored}

    @classmethod
    def read(cls, fields: Fields) -> Stored:
        return cls(fields.flag("stored"))


@dataclass(frozen=True, slots=True)
class FetchedEnvelope:
    envelope_id: bytes
    expires: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Fetched:
    """A mailbox's envelopes, oldest first."""

    envelopes: tuple[FetchedEnvelope, ...]
    skipped: int = 0
    """Items of the answer that were not envelopes, left out when it was read
    (one bad item does not hold back the envelopes beside it)."""

    def wire(self) -> dict[str, object]:
        return {"ok": True, "envelopes": [[e.envelope_id, e.expires, e.body] for e in self.envelopes]}

    @classmethod
    def read(cls, fields: Fields) -> Fetched:
        envelopes = [_envelope(item) for item in fields.array("envelopes")]
        kept = tuple(e for e in envelopes if e is not None)
        return cls(kept, len(envelopes) - len(kept))


def _envelope(item: object) -> FetchedEnvelope | None:
    if not (isinstance(item, list) and len(item) == 3):
        return None
    envelope_id, expires, body = item
    if (
        isinstance(envelope_id, bytes)
        and len(envelope_id) == ID_BYTES
        and isinstance(expires, int)
        and not isinstance(expires, bool)
        and 0 <= expires < MAX_UINT
        and isinstance(body, bytes)
    ):
        return FetchedEnvelope(envelope_id, expires, body)
    return None


@dataclass(frozen=True, slots=True)
class Acked:
    """How many of the acknowledged envelopes were still there, and are now deleted."""

    removed: int

    def wire(self) -> dict[str, object]:
        return {"ok": True, "removed": self.removed}

    @classmethod
    def read(cls, fields: Fields) -> Acked:
        return cls(fields.uint("removed"))


@dataclass(frozen=True, slots=True)
class Usage:
    """What one mailbox holds (``size`` is ``bytes`` on the wire)."""

    envelopes: int
    size: int

    def wire(self) -> dict[str, object]:
        return {"ok": True, "envelopes": self.envelopes, "bytes": self.size}

    @classmethod
    def read(cls, fields: Fields) -> Usage:
        return cls(fields.uint("envelopes"), fields.uint("bytes"))


@dataclass(frozen=True, slots=True)
class Refused:
    """An error answer: ``code`` is an :class:`ErrorCode`, or as it came if this build does not know it."""

    code: ErrorCode | str
    message: str

    def wire(self) -> dict[str, object]:
        return {"ok": False, "code": str(self.code), "message": self.message}

    @classmethod
    def read(cls, fields: Fields) -> Refused:
        return cls(error_code(fields.text("code")), fields.text("message"))


Success = Registered | Stored | Fetched | Acked | Usage
Answer = Success | Refused
A = TypeVar("A", bound=Success)

# ------------------------------------------------------------------ requests


class Request(ABC, Generic[A]):
    """A request whose answer, unless it is refused, is an ``A``."""

    __slots__ = ()
    op: ClassVar[Op]

    @abstractmethod
    def fields(self) -> dict[str, object]:
        """The request's fields but ``op``, in their order on the wire."""

    @abstractmethod
    def read_answer(self, fields: Fields) -> A:
        """A success answer's fields, read as the answer to this request."""

    def wire(self) -> dict[str, object]:
        return {"op": self.op.value, **self.fields()}


@dataclass(frozen=True, slots=True)
class Register(Request[Registered]):
    """Create a mailbox, or renew it (the same secret)."""

    op: ClassVar[Op] = Op.REGISTER
    mailbox: bytes
    secret: bytes
    expires: int

    def fields(self) -> dict[str, object]:
        return {"mailbox": self.mailbox, "secret": self.secret, "expires": self.expires}

    @classmethod
    def read(cls, fields: Fields) -> Register:
        return cls(
            fields.binary("mailbox", ID_BYTES), fields.binary("secret", SECRET_BYTES), fields.uint("expires")
        )

    def read_answer(self, fields: Fields) -> Registered:
        return Registered.read(fields)


@dataclass(frozen=True, slots=True)
class Deposit(Request[Stored]):
    """Store an envelope (``envelope_id`` is ``id`` on the wire).  Sealed to a
    relay, the same fields but ``op`` travel inside :class:`Sealed`."""

    op: ClassVar[Op] = Op.DEPOSIT
    mailbox: bytes
    envelope_id: bytes
    expires: int
    body: bytes

    def fields(self) -> dict[str, object]:
        return {"mailbox": self.mailbox, "id": self.envelope_id, "expires": self.expires, "body": self.body}

    @classmethod
    def read(cls, fields: Fields) -> Deposit:
        return cls(
            fields.binary("mailbox", ID_BYTES),
            fields.binary("id", ID_BYTES),
            fields.uint("expires"),
            fields.binary("body"),
        )

    def read_answer(self, fields: Fields) -> Stored:
        return Stored.read(fields)


@dataclass(frozen=True, slots=True)
class Forward(Request[Stored]):
    """Pass a deposit sealed to ``relay`` on to it."""

    op: ClassVar[Op] = Op.FORWARD
    relay: bytes
    sealed: bytes

    def fields(self) -> dict[str, object]:
        return {"relay": self.relay, "sealed": self.sealed}

    @classmethod
    def read(cls, fields: Fields) -> Forward:
        return cls(fields.binary("relay", KEY_BYTES), fields.binary("sealed"))

    def read_answer(self, fields: Fields) -> Stored:
        return Stored.read(fields)


@dataclass(frozen=True, slots=True)
class Sealed(Request[Stored]):
    """A deposit sealed to this relay (:func:`encode_sealed_deposit`)."""

    op: ClassVar[Op] = Op.SEALED
    sealed: bytes

    def fields(self) -> dict[str, object]:
        return {"sealed": self.sealed}

    @classmethod
    def read(cls, fields: Fields) -> Sealed:
        return cls(fields.binary("sealed"))

    def read_answer(self, fields: Fields) -> Stored:
        return Stored.read(fields)


@dataclass(frozen=True, slots=True)
class Fetch(Request[Fetched]):
    """Up to ``limit`` envelopes of a mailbox, oldest first."""

    op: ClassVar[Op] = Op.FETCH
    mailbox: bytes
    secret: bytes
    limit: int

    def fields(self) -> dict[str, object]:
        return {"mailbox": self.mailbox, "secret": self.secret, "limit": self.limit}

    @classmethod
    def read(cls, fields: Fields) -> Fetch:
        return cls(
            fields.binary("mailbox", ID_BYTES), fields.binary("secret", SECRET_BYTES), fields.uint("limit")
        )

    def read_answer(self, fields: Fields) -> Fetched:
        return Fetched.read(fields)


@dataclass(frozen=True, slots=True)
class Ack(Request[Acked]):
    """Delete delivered envelopes from a mailbox."""

    op: ClassVar[Op] = Op.ACK
    mailbox: bytes
    secret: bytes
    ids: tuple[bytes, ...]

    def fields(self) -> dict[str, object]:
        return {"mailbox": self.mailbox, "secret": self.secret, "ids": list(self.ids)}

    @classmethod
    def read(cls, fields: Fields) -> Ack:
        return cls(
            fields.binary("mailbox", ID_BYTES), fields.binary("secret", SECRET_BYTES), fields.ids("ids")
        )

    def read_answer(self, fields: Fields) -> Acked:
        return Acked.read(fields)


@dataclass(frozen=True, slots=True)
class Stats(Request[Usage]):
    """What a mailbox holds, for its owner."""

    op: ClassVar[Op] = Op.STATS
    mailbox: bytes
    secret: bytes

    def fields(self) -> dict[str, object]:
        return {"mailbox": self.mailbox, "secret": self.secret}

    @classmethod
    def read(cls, fields: Fields) -> Stats:
        return cls(fields.binary("mailbox", ID_BYTES), fields.binary("secret", SECRET_BYTES))

    def read_answer(self, fields: Fields) -> Usage:
        return Usage.read(fields)


AnyRequest = Register | Deposit | Forward | Sealed | Fetch | Ack | Stats

REQUESTS: dict[Op, Callable[[Fields], AnyRequest]] = {
    Op.REGISTER: Register.read,
    Op.DEPOSIT: Deposit.read,
    Op.FORWARD: Forward.read,
    Op.SEALED: Sealed.read,
    Op.FETCH: Fetch.read,
    Op.ACK: Ack.read,
    Op.STATS: Stats.read,
}
"""How each operation's request is read."""

# ------------------------------------------------------------------ the boundary


def decode_request(body: bytes) -> AnyRequest:
    """The request in a message body; :class:`~relay.protocol.ProtocolError` if it is not one."""
    fields = Fields(unpack(body), "request")
    op = fields.op()
    fields.what = op.value
    return REQUESTS[op](fields)


def decode_sealed_deposit(body: bytes) -> Deposit:
    """The deposit inside a :class:`Sealed` request, once opened."""
    fields = Fields(unpack(body), "sealed deposit")
    return Deposit.read(fields)


def decode_answer(body: bytes, request: Request[A]) -> A | Refused:
    """The answer to ``request`` in a message body (an error answer is one);
    :class:`~relay.protocol.ProtocolError` if it is not one."""
    fields = Fields(unpack(body, answer=True), f"answer to {request.op.value}")
    return request.read_answer(fields) if fields.flag("ok") else Refused.read(fields)


def encode(message: Request[Any] | Answer) -> bytes:
    """A request or an answer, framed for a stream."""
    return frame(pack(message.wire()))


def encode_sealed_deposit(deposit: Deposit) -> bytes:
    """A deposit's fields but ``op``, to be sealed to its relay and sent in a :class:`Sealed`."""
    return pack(deposit.fields())
