"""The inbound gateway: federation streams from other nodes, to the homeserver.

Every stream that arrives with ALPN ``matrix`` is piped to the local
homeserver's plain-HTTP federation listener, both ways, with backpressure (a
session stream's flow control and the socket's), an idle timeout and a bound on
how many are served at once; past it, a stream is refused (reset) and counted.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from enum import IntEnum

import structlog

from router.gateway.tunnel import PlainSide, StreamSide, TunnelError, pipe
from router.sessions.errors import SessionError
from router.sessions.records import StreamResetCode
from router.sessions.stream import SessionStream

log = structlog.get_logger("router.gateway")

CONNECT_TIMEOUT_S = 10.0


class InboundResetCode(IntEnum):
    """Why the inbound gateway resets a federation stream (QUIC application error
    codes); the proxy of the node that opened the stream turns each into an
    HTTP answer for its homeserver.  A node with no inbound gateway resets the
    stream with :attr:`StreamResetCode.REFUSED` (nothing takes the protocol)."""

    NO_HOMESERVER = StreamResetCode.REFUSED
    """This node serves no homeserver."""
    HOMESERVER_UNREACHABLE = 0x11
    """The homeserver did not take the connection."""
    BUSY = 0x12
    """As many federation streams are being served as the node allows."""


class InboundGateway:
    def __init__(self, host: str, port: int, max_streams: int, idle_timeout: float) -> None:
        self.host = host
        self.port = port
        self.max_streams = max_streams
        self.idle_timeout = idle_timeout
        self.active = 0
        self.counters: Counter[str] = Counter()

    async def handle(self, stream: SessionStream) -> None:
        if self.active >= self.max_streams:
            self.counters["refused: too many streams"] += 1
            stream.abort(InboundResetCode.BUSY)
            return
        self.active += 1
        try:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), CONNECT_TIMEOUT_S
                )
            except (OSError, TimeoutError) as exc:
                self.counters["failed: homeserver unreachable"] += 1
                log.warning("cannot reach the homeserver", address=f"{self.host}:{self.port}", error=str(exc))
                stream.abort(InboundResetCode.HOMESERVER_UNREACHABLE)
                return
            self.counters["streams served"] += 1
            try:
                down, up = await pipe(StreamSide(stream), PlainSide(reader, writer), self.idle_timeout)
                self.counters["bytes to the homeserver"] += down
                self.counters["bytes from the homeserver"] += up
            except (TunnelError, SessionError, OSError) as exc:
                self.counters["streams broken"] += 1
                log.info("inbound federation stream ended", peer=stream.key.hex(), reason=str(exc))
            finally:
                writer.close()
        finally:
            self.active -= 1
