"""One length-prefixed relay message at a time over a session stream, and a
whole request and its answer (the asking side of :mod:`relay.service`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from relay.errors import CallTimeout, SessionLost
from relay.messages import A, Refused, Request, decode_answer, encode
from relay.protocol import ALPN, LENGTH, ErrorCode, ProtocolError, max_body
from router.sessions.errors import SessionError
from router.sessions.runtime import Sessions
from router.sessions.stream import SessionStream

REQUEST_TIMEOUT_S = 30.0
"""How long one message of a request or an answer may take to arrive."""


async def read_message(
    stream: SessionStream, *, answer: bool = False, timeout: float = REQUEST_TIMEOUT_S
) -> bytes | None:
    """One length-prefixed message body, or None at a clean end of stream.

    A broken stream raises the sessions layer's :class:`SessionError`, and a
    message slower than ``timeout`` :class:`TimeoutError`: the asking side maps
    them (:func:`asking`), and the serving side hands the first back to the
    sessions layer that called it and counts the second."""
    head = b""
    while len(head) < LENGTH.size:
        chunk = await asyncio.wait_for(stream.read(LENGTH.size - len(head)), timeout)
        if not chunk:
            if head:
                raise ProtocolError(ErrorCode.MALFORMED, "stream ended inside a length")
            return None
        head += chunk
    (length,) = LENGTH.unpack(head)
    limit = max_body(answer=answer)
    if length > limit:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"message of {length} bytes (limit {limit})")
    return await asyncio.wait_for(stream.readexactly(length), timeout)


@contextmanager
def asking(timeout: float) -> Iterator[None]:
    """Where a request meets the sessions layer: its errors become :class:`SessionLost`,
    and a timeout :class:`CallTimeout`."""
    try:
        yield
    except SessionError as exc:
        raise SessionLost(str(exc)) from exc
    except TimeoutError as exc:
        raise CallTimeout(f"no answer within {timeout:g} s") from exc


async def exchange(
    stream: SessionStream, request: Request[A], timeout: float, *, last: bool = False
) -> A | Refused:
    """Send ``request`` on ``stream`` (and finish sending, if it is the ``last``)
    and read its answer (which may be an error answer)."""
    with asking(timeout):
        stream.write(encode(request))
        if last:
            stream.write_eof()
        body = await read_message(stream, answer=True, timeout=timeout)
    if body is None:
        raise ProtocolError(ErrorCode.NO_ANSWER, "the relay closed the stream without answering")
    return decode_answer(body, request)


async def call(sessions: Sessions, relay: bytes, request: Request[A], timeout: float) -> A | Refused:
    """One request to the relay with key ``relay`` on a stream of its own; its
    answer (which may be an error answer).  :class:`~relay.errors.CallError` or
    :class:`ProtocolError` if there is none."""
    with asking(timeout):
        stream = await sessions.open_stream(relay, ALPN, timeout)
    try:
        return await exchange(stream, request, timeout, last=True)
    finally:
        if not stream.done:
            stream.abort()
