"""The relay's session protocol (ALPN ``pinewood-relay/1``): requests and answers.

Each message is a 4-byte big-endian length, then a msgpack map.  Decoding is
strict: sizes of every kind are capped before anything is allocated, nesting
is shallow by construction (every field has a fixed type), unknown operations
and fields of the wrong type are refused with an error code, never a crash.

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
from typing import Any

import msgpack

from relay.envelope import ID_BYTES, MAX_ENVELOPE_BYTES
from relay.errors import RelayError

ALPN = "pinewood-relay/1"
MAX_MESSAGE_BYTES = MAX_ENVELOPE_BYTES + 64 * 1024
MAX_ANSWER_BYTES = 16 * MAX_ENVELOPE_BYTES
MAX_IDS = 1000
LENGTH = struct.Struct("!I")

FIELDS: dict[str, dict[str, tuple[type, int | None]]] = {
    "register": {"mailbox": (bytes, ID_BYTES), "secret": (bytes, 32), "expires": (int, None)},
    "deposit": {
        "mailbox": (bytes, ID_BYTES),
        "id": (bytes, ID_BYTES),
        "expires": (int, None),
        "body": (bytes, None),
    },
    "forward": {"relay": (bytes, 32), "sealed": (bytes, None)},
    "sealed": {"sealed": (bytes, None)},
    "fetch": {"mailbox": (bytes, ID_BYTES), "secret": (bytes, 32), "limit": (int, None)},
    "ack": {"mailbox": (bytes, ID_BYTES), "secret": (bytes, 32), "ids": (list, None)},
    "stats": {"mailbox": (bytes, ID_BYTES), "secret": (bytes, 32)},
}


class ProtocolError(RelayError):
    """A message that breaks the protocol; ``code`` goes back to the sender."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def encode(message: dict[str, Any]) -> bytes:
    body: bytes = msgpack.packb(message, use_bin_type=True)
    return LENGTH.pack(len(body)) + body


def decode_body(body: bytes, *, answer: bool = False) -> dict[str, Any]:
    """A message's map, with every size capped while decoding."""
    limit = MAX_ANSWER_BYTES if answer else MAX_MESSAGE_BYTES
    try:
        value = msgpack.unpackb(
            body,
            max_bin_len=limit,
            max_str_len=4096,
            max_array_len=MAX_IDS,
            max_map_len=16,
            max_ext_len=0,
            strict_map_key=True,
            raw=False,
        )
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, TypeError) as exc:
        raise ProtocolError("malformed", f"not a msgpack message: {exc}") from None
    if not isinstance(value, dict):
        raise ProtocolError("malformed", "a message is a map")
    return value


def check_request(message: dict[str, Any]) -> str:
    """The request's operation, once every field it needs has the right type and size."""
    op = message.get("op")
    if not isinstance(op, str) or op not in FIELDS:
        raise ProtocolError("unknown-op", f"unknown operation {op!r}")
    for name, (kind, size) in FIELDS[op].items():
        value = message.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ProtocolError("malformed", f"{op}: field {name!r} must be {kind.__name__}")
        if size is not None and isinstance(value, bytes) and len(value) != size:
            raise ProtocolError("malformed", f"{op}: field {name!r} must be {size} bytes")
        if isinstance(value, int) and not 0 <= value < 1 << 62:
            raise ProtocolError("malformed", f"{op}: field {name!r} out of range")
    if op == "ack" and not all(isinstance(i, bytes) and len(i) == ID_BYTES for i in message["ids"]):
        raise ProtocolError("malformed", "ack: ids must be 16-byte ids")
    return op


def error(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "code": code, "message": message}
