"""One length-prefixed relay message at a time over a session stream, and a
whole request and its answer (the asking side of :mod:`relay.service`)."""

from __future__ import annotations

import asyncio
from typing import Any

from relay.protocol import ALPN, LENGTH, MAX_MESSAGE_BYTES, ProtocolError, decode_body, encode
from router.sessions.runtime import Sessions
from router.sessions.stream import SessionStream

REQUEST_TIMEOUT_S = 30.0
"""How long one message of a request or an answer may take to arrive."""


async def read_message(
    stream: SessionStream, *, answer: bool = False, timeout: float = REQUEST_TIMEOUT_S
) -> bytes | None:
    """One length-prefixed message body, or None at a clean end of stream."""
    head = b""
    while len(head) < LENGTH.size:
        chunk = await asyncio.wait_for(stream.read(LENGTH.size - len(head)), timeout)
        if not chunk:
            if head:
                raise ProtocolError("malformed", "stream ended inside a length")
            return None
        head += chunk
    (length,) = LENGTH.unpack(head)
    limit = 16 * MAX_MESSAGE_BYTES if answer else MAX_MESSAGE_BYTES
    if length > limit:
        raise ProtocolError("too-large", f"message of {length} bytes (limit {limit})")
    return await asyncio.wait_for(stream.readexactly(length), timeout)


async def call(sessions: Sessions, relay: bytes, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One request to the relay with key ``relay``; its answer (which may be an error answer)."""
    stream = await sessions.open_stream(relay, ALPN, timeout)
    try:
        stream.write(encode(request))
        stream.write_eof()
        body = await read_message(stream, answer=True, timeout=timeout)
        if body is None:
            raise ProtocolError("no-answer", "the relay closed the stream without answering")
        return decode_body(body, answer=True)
    finally:
        if not stream.done:
            stream.abort()
