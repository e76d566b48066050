"""The relay's session protocol (ALPN ``pinewood-relay/1``): framing, codes and strict reading.

Each message is a 4-byte big-endian length, then a msgpack map.  Decoding is
strict: sizes of every kind are capped before anything is allocated, nesting
is shallow by construction (every field has a fixed type), and unknown
operations, missing and mistyped fields are refused with a
:class:`ProtocolError` and its code, never a crash.  Fields a message does not
have are ignored, as they always were: a later build may add one, and relays
and clients of different builds keep talking.  The messages themselves,
and how each is written and read, are in :mod:`relay.messages`.

Requests (``op`` and its fields; binary fields are msgpack bin):

``register``  mailbox(16) secret(32) expires(int s) - create or renew a mailbox
``deposit``   mailbox(16) id(16) expires body       - store an envelope
``forward``   relay(32) sealed                      - pass a sealed deposit on
``sealed``    sealed                                - a deposit sealed to this relay
``fetch``     mailbox secret limit                  - envelopes, oldest first
``ack``       mailbox secret ids[]                  - delete delivered envelopes
``stats``     mailbox secret                        - this mailbox's usage

Answers: ``{"ok": true, ...}`` or ``{"ok": false, "code": CODE, "message": TEXT}``.
"""

from __future__ import annotations

import struct
from enum import StrEnum

import msgpack

from relay.envelope import ID_BYTES, MAX_ENVELOPE_BYTES
from relay.errors import RelayError

ALPN = "pinewood-relay/1"
MAX_MESSAGE_BYTES = MAX_ENVELOPE_BYTES + 64 * 1024
"""The largest request body."""
MAX_ANSWER_MESSAGE_BYTES = 16 * MAX_MESSAGE_BYTES
"""The largest answer body (a fetch answers with many envelopes)."""
MAX_ANSWER_BYTES = 16 * MAX_ENVELOPE_BYTES
"""The largest binary field of an answer."""
MAX_IDS = 1000
MAX_FIELDS = 16
MAX_TEXT_BYTES = 4096
MAX_UINT = 1 << 62
"""Every integer field is at least 0 and below this."""
KEY_BYTES = 32
SECRET_BYTES = 32
LENGTH = struct.Struct("!I")


class Op(StrEnum):
    """A request's operation, as its ``op`` field names it."""

    REGISTER = "register"
    DEPOSIT = "deposit"
    FORWARD = "forward"
    SEALED = "sealed"
    FETCH = "fetch"
    ACK = "ack"
    STATS = "stats"


class ErrorCode(StrEnum):
    """The codes of error answers (and of the relay's counted rejections)."""

    MALFORMED = "malformed"
    UNKNOWN_OP = "unknown-op"
    TOO_LARGE = "too-large"
    NO_ANSWER = "no-answer"
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate-limited"
    BAD_SEAL = "bad-seal"
    BAD_SIZE = "bad-size"
    EXPIRED = "expired"
    TOO_MANY_MAILBOXES = "too-many-mailboxes"
    BAD_FORWARD = "bad-forward"
    RELAY_UNREACHABLE = "relay-unreachable"
    # What the store refuses (relay.stores): passed on to the asker as they are.
    MAILBOX_TAKEN = "mailbox-taken"
    UNKNOWN_MAILBOX = "unknown-mailbox"
    OVER_QUOTA = "over-quota"
    FORBIDDEN = "forbidden"
    STORE_CLOSED = "store-closed"
    STORE_ERROR = "store-error"
    STORE_UNAVAILABLE = "store-unavailable"


def error_code(code: str) -> ErrorCode | str:
    """``code`` as an :class:`ErrorCode` if this build knows it; as it came otherwise
    (a newer relay's code is passed on, not refused)."""
    try:
        return ErrorCode(code)
    except ValueError:
        return code


class ProtocolError(RelayError):
    """A message that breaks the protocol; ``code`` goes back to the sender."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def frame(body: bytes) -> bytes:
    """A message body with its length in front, as it goes on a stream."""
    return LENGTH.pack(len(body)) + body


def pack(fields: dict[str, object]) -> bytes:
    """A message's map as msgpack (binary fields as bin, text as str)."""
    packed: bytes = msgpack.packb(fields, use_bin_type=True)
    return packed


def max_body(*, answer: bool) -> int:
    """The largest body of a request, or of an answer."""
    return MAX_ANSWER_MESSAGE_BYTES if answer else MAX_MESSAGE_BYTES


def unpack(body: bytes, *, answer: bool = False) -> object:
    """The msgpack value in ``body``, with every size capped while decoding."""
    limit = max_body(answer=answer)
    if len(body) > limit:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"message of {len(body)} bytes (limit {limit})")
    try:
        return msgpack.unpackb(
            body,
            max_bin_len=MAX_ANSWER_BYTES if answer else MAX_MESSAGE_BYTES,
            max_str_len=MAX_TEXT_BYTES,
            max_array_len=MAX_IDS,
            max_map_len=MAX_FIELDS,
            max_ext_len=0,
            strict_map_key=True,
            raw=False,
        )
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, TypeError) as exc:
        # ValueError covers msgpack's size caps and text that is not UTF-8.
        raise ProtocolError(ErrorCode.MALFORMED, f"not a msgpack message: {exc}") from None


_MISSING = object()


class Fields:
    """The fields of one decoded map, each taken once with its type and size
    checked (fields not taken are ignored)."""

    __slots__ = ("_fields", "what")

    def __init__(self, value: object, what: str) -> None:
        if not isinstance(value, dict):
            raise ProtocolError(ErrorCode.MALFORMED, "a message is a map")
        self._fields: dict[object, object] = dict(value)
        self.what = what
        """What the map is (an operation, or its answer), for messages."""

    def _take(self, name: str) -> object:
        value = self._fields.pop(name, _MISSING)
        if value is _MISSING:
            raise self.malformed(f"field {name!r} is missing")
        return value

    def malformed(self, reason: str) -> ProtocolError:
        return ProtocolError(ErrorCode.MALFORMED, f"{self.what}: {reason}")

    def binary(self, name: str, size: int | None = None) -> bytes:
        value = self._take(name)
        if not isinstance(value, bytes):
            raise self.malformed(f"field {name!r} must be bytes")
        if size is not None and len(value) != size:
            raise self.malformed(f"field {name!r} must be {size} bytes")
        return value

    def uint(self, name: str) -> int:
        value = self._take(name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.malformed(f"field {name!r} must be int")
        if not 0 <= value < MAX_UINT:
            raise self.malformed(f"field {name!r} out of range")
        return value

    def flag(self, name: str) -> bool:
        value = self._take(name)
        if not isinstance(value, bool):
            raise self.malformed(f"field {name!r} must be a boolean")
        return value

    def text(self, name: str) -> str:
        value = self._take(name)
        if not isinstance(value, str):
            raise self.malformed(f"field {name!r} must be text")
        return value

    def array(self, name: str) -> list[object]:
        value = self._take(name)
        if not isinstance(value, list):
            raise self.malformed(f"field {name!r} must be a list")
        return value

    def ids(self, name: str) -> tuple[bytes, ...]:
        """A list of envelope ids."""
        items = self.array(name)
        ids = tuple(i for i in items if isinstance(i, bytes) and len(i) == ID_BYTES)
        if len(ids) != len(items):
            raise self.malformed(f"{name} must be {ID_BYTES}-byte ids")
        return ids

    def op(self) -> Op:
        """The request's operation."""
        value = self._fields.pop("op", None)
        try:
            if isinstance(value, str):
                return Op(value)
        except ValueError:
            pass
        raise ProtocolError(ErrorCode.UNKNOWN_OP, f"unknown operation {value!r}")
