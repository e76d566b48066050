"""Federation to a node that is away: transactions are left on its relays.

When the destination cannot be reached within the session timeout but has
published relays, the gateway still opens the homeserver's tunnel and answers
it itself.  Each ``PUT /_matrix/federation/v1/send/{txnId}`` (a federation
transaction) is sealed, exactly as the homeserver sent it, into an envelope for
the destination, deposited on one of its relays, and answered as delivered;
the destination replays it to its own homeserver when it returns.  Any other
request fails at once with 503, as it would for a server that is down.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable

from relay.envelope import MAX_ENVELOPE_BYTES
from router.gateway.tunnel import ByteSide

MAX_HEAD = 16 * 1024
MAX_BODY = MAX_ENVELOPE_BYTES - 64 * 1024
TRANSACTION_PREFIX = b"PUT /_matrix/federation/v1/send/"


class _Closed(Exception):
    pass


class _Reader:
    """Buffered reads of HTTP/1.1 requests from a pipe side."""

    def __init__(self, side: ByteSide, idle_timeout: float) -> None:
        self.side = side
        self.buffer = b""
        self.idle_timeout = idle_timeout

    async def _more(self) -> None:
        chunk = await asyncio.wait_for(self.side.read(), self.idle_timeout)
        if not chunk:
            raise _Closed
        self.buffer += chunk

    async def head(self) -> bytes:
        while b"\r\n\r\n" not in self.buffer:
            if len(self.buffer) > MAX_HEAD:
                raise ValueError("request head too long")
            await self._more()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return head + b"\r\n\r\n"

    async def exactly(self, count: int) -> bytes:
        while len(self.buffer) < count:
            await self._more()
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data


def _response(status: int, reason: str, body: dict[str, object], close: bool = False) -> bytes:
    data = json.dumps(body).encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n"
    ).encode() + data


async def serve_away(
    side: ByteSide,
    deposit: Callable[[bytes], Awaitable[None]],
    idle_timeout: float,
    counters: Counter[str],
) -> None:
    """Answer the homeserver's requests for a destination that is away."""
    reader = _Reader(side, idle_timeout)
    while True:
        try:
            head = await reader.head()
        except (_Closed, TimeoutError):
            await side.finish()
            return
        except ValueError:
            await side.write(
                _response(431, "Request Header Fields Too Large", {"error": "head too long"}, True)
            )
            await side.finish()
            return
        length = 0
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length" and value.strip().isdigit():
                length = int(value.strip())
            elif name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked or length > MAX_BODY:
            counters["away: requests refused"] += 1
            await side.write(_response(413, "Content Too Large", {"error": "too large to relay"}, True))
            await side.finish()
            return
        try:
            body = await reader.exactly(length)
        except (_Closed, TimeoutError):
            await side.finish()
            return
        if not head.startswith(TRANSACTION_PREFIX):
            counters["away: requests failed fast"] += 1
            await side.write(
                _response(503, "Service Unavailable", {"errcode": "M_UNKNOWN", "error": "the server is away"})
            )
            continue
        try:
            await deposit(head + body)
        except Exception as exc:  # any failure to deposit: the homeserver retries later
            counters["away: deposits failed"] += 1
            await side.write(
                _response(
                    503, "Service Unavailable", {"errcode": "M_UNKNOWN", "error": f"not relayed: {exc}"}
                )
            )
            continue
        counters["away: transactions relayed"] += 1
        await side.write(_response(200, "OK", {"pdus": {}}))
