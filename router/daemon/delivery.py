"""What arrives for this node: overlay pings and their answers, relay records,
and session datagrams for the QUIC endpoint."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable

from relay.records import PREFIX as RECORD_PREFIX
from router.routing.outputs import Deliver
from router.wire.keys import PublicKey

PING_PREFIX = b"\x00pinewood-ping\x00"
PONG_PREFIX = b"\x00pinewood-pong\x00"

Send = Callable[[bytes, bytes], None]


class LocalDelivery:
    """The node's own applications, as the router delivers to them."""

    def __init__(
        self,
        key: PublicKey,
        send: Send,
        relay_datagram: Callable[[bytes, bytes, bytes], None],
        session_datagram: Callable[[bytes, bytes], None],
        counters: Counter[str],
    ) -> None:
        self.key = key
        self.send = send
        """Send as this node's own traffic (charged to no peer)."""
        self.relay_datagram = relay_datagram
        self.session_datagram = session_datagram
        self.counters = counters
        self._ping_waiters: dict[bytes, tuple[bytes, asyncio.Future[float]]] = {}

    def deliver(self, out: Deliver) -> None:
        if out.payload.startswith(RECORD_PREFIX):
            # Relay records: also for keys we stand in for while they are away.
            self.relay_datagram(bytes(out.source_key), bytes(out.destination_key), bytes(out.payload))
            return
        if out.destination_key != self.key:
            self.counters["frames for absent keys"] += 1
            return
        payload = out.payload
        if payload.startswith(PING_PREFIX) and len(payload) == len(PING_PREFIX) + 8:
            self.send(out.source_key, PONG_PREFIX + payload[len(PING_PREFIX) :])
            return
        if payload.startswith(PONG_PREFIX):
            nonce = payload[len(PONG_PREFIX) :]
            pending = self._ping_waiters.get(nonce)
            if pending is not None and pending[0] == out.source_key and not pending[1].done():
                del self._ping_waiters[nonce]
                pending[1].set_result(time.perf_counter())
            else:
                self.counters["pongs for no ping waiting"] += 1  # late, or not ours
            return
        self.counters["frames delivered to the application"] += 1
        if payload and payload[0] & 0x40:  # QUIC's fixed bit: a session datagram
            self.session_datagram(bytes(out.source_key), bytes(payload))
        else:
            self.counters["overlay payloads for no application"] += 1

    async def ping(self, key: PublicKey, timeout: float) -> float | None:
        """Round-trip time in seconds to the node with ``key``, or None on timeout."""
        nonce = os.urandom(8)
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._ping_waiters[nonce] = (bytes(key), waiter)
        started = time.perf_counter()  # uvloop's loop clock has millisecond resolution
        self.send(key, PING_PREFIX + nonce)
        try:
            answered = await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            return None
        finally:
            self._ping_waiters.pop(nonce, None)
        return answered - started
