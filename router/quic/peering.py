"""A QUIC connection that carries one peering, driven the same way on either engine.

Both engines (aioquic and qh3) offer the same sans-I/O connection and an asyncio
protocol class to drive it; :class:`PeeringConnection` is the driving, written
once, and each engine module makes it concrete over its own protocol class.
What the connection carries is the business of a :class:`PeeringHandler` (the
link layer's stream transport), told of a completed handshake, stream data, each
transmit and the end.

How the connection is driven decides the throughput:

* one transmit per turn of the event loop, after every datagram received in that
  turn and every write made in it, not one per datagram and per write;
* the time given to the engine comes from a fine clock, not the loop's: uvloop's
  clock moves in milliseconds, and a pacer that refills its budget by the time
  passed between calls then gets nothing back within a millisecond and wakes its
  timer over and over for nothing;
* the timer is re-armed only when the engine wants waking earlier than it is
  armed for; waking early is harmless (nothing is due, the timer is armed again).

The dialler waits for the handshake on a future of its own, created before the
first Initial goes out.  aioquic's ``wait_connected`` notes a completed
handshake only if somebody is already waiting for it, so a handshake that
completes in the loop turn between sending the Initial and starting to wait (on a
busy machine, the server's reply is read in that same turn) was never seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, cast

clock = time.monotonic
"""The time given to the engine, in seconds (finer than uvloop's millisecond loop clock)."""


class PeeringHandler(Protocol):
    """What a peering's connection tells the layer above it."""

    def handshake_completed(self) -> None: ...

    def stream_data(self, stream_id: int, data: bytes, end: bool) -> None: ...

    def transmitted(self) -> None:
        """A transmit happened: acknowledgements may have freed send buffers."""

    def ended(self, reason: str) -> None: ...


Acceptor = Callable[["PeeringConnection", int], "PeeringHandler | None"]
"""On a listener's connection, called with the first stream that brings data
while no handler is attached; returns the handler for it, or None to ignore it."""


class PeeringConnection(asyncio.DatagramProtocol):
    """The engine-neutral driving of one peering's connection (a mixin: each
    engine module derives it together with its own protocol class, this first)."""

    handshake_event: ClassVar[type]
    stream_event: ClassVar[type]
    terminated_event: ClassVar[type]
    engine_errors: ClassVar[tuple[type[Exception], ...]] = ()
    """What the engine raises when its connection cannot go on (qh3's native core
    fails so; aioquic closes the connection instead)."""

    quic: Any
    """The engine's sans-I/O connection."""

    def _setup(self, quic: Any, accept: Acceptor | None) -> None:
        self.quic = quic
        self.accept = accept
        self.loop = asyncio.get_running_loop()
        self.udp: asyncio.DatagramTransport | None = None
        self.handler: PeeringHandler | None = None
        self.peer_address: tuple[str, int] | None = None
        self.owns_socket = False
        """A dialler's connection has a UDP socket of its own; a listener's shares one."""
        self._lost = False
        self._failed = False
        self._transmit_pending = False
        self._wake: asyncio.TimerHandle | None = None
        self._wake_at = math.inf
        self.handshake: asyncio.Future[None] = self.loop.create_future()
        # Only a dialler awaits this; an unawaited failure is not an error to report.
        self.handshake.add_done_callback(_retrieve)

    # ------------------------------------------------------------ what each engine supplies

    def dispatch_events(self) -> None:
        raise NotImplementedError

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Any]]:
        """The datagrams the engine has to send now, with their addresses."""
        datagrams: list[tuple[bytes, Any]] = self.quic.datagrams_to_send(now=now)
        return datagrams

    def peer_key(self) -> bytes | None:
        """The ed25519 key the other side's certificate names (and TLS proved), or None."""
        raise NotImplementedError

    def rtt_s(self) -> float | None:
        raise NotImplementedError

    def unsent_bytes(self, stream_id: int) -> int:
        """Bytes written to ``stream_id`` that the engine still holds (it may raise
        one of :attr:`engine_errors`)."""
        raise NotImplementedError

    def forget(self) -> None:
        """Tell a listener to forget this connection, whose end the engine will
        not report (it failed)."""
        raise NotImplementedError

    # ------------------------------------------------------------ the layer above's calls

    def attach(self, handler: PeeringHandler) -> None:
        self.handler = handler

    def next_stream_id(self) -> int:
        stream_id: int = self.quic.get_next_available_stream_id()
        return stream_id

    def unsent(self, stream_id: int) -> int:
        """Bytes written to ``stream_id`` that the engine still holds."""
        if self._failed:
            return 0
        try:
            return self.unsent_bytes(stream_id)
        except self.engine_errors as exc:
            self.failed(exc)
            return 0

    def send(self, stream_id: int, data: bytes | bytearray | memoryview) -> None:
        if self._failed:
            return
        try:
            self.quic.send_stream_data(stream_id, bytes(data))
        except self.engine_errors as exc:
            self.failed(exc)
            return
        self.transmit_soon()

    def shut(self) -> None:
        """Close the connection (the other side is told at once)."""
        if self._failed:
            return
        try:
            self.quic.close()
        except self.engine_errors as exc:
            self.failed(exc)
            return
        self.transmit()

    def close_socket(self) -> None:
        """Close the UDP socket, if it is this connection's own."""
        if self.owns_socket and self.udp is not None:
            self.udp.close()

    def start(self, address: Any) -> None:
        """The dialler's side: send the first Initial to ``address``."""
        self.quic.connect(address, now=clock())
        self.transmit()

    # ------------------------------------------------------------ asyncio's calls

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.udp = cast(asyncio.DatagramTransport, transport)
        super().connection_made(self.udp)

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        if self.peer_address is None:
            self.peer_address = (addr[0].removeprefix("::ffff:"), addr[1])
        if self._failed:
            return
        try:
            self.quic.receive_datagram(cast(bytes, data), addr, now=clock())
        except self.engine_errors as exc:
            self.failed(exc)
            return
        self.dispatch_events()
        self.transmit_soon()

    def datagrams_received(self, data: list[bytes], addr: Any) -> None:
        """A batch of datagrams (qh3's protocol takes these from transports that
        offer them), each as :meth:`datagram_received`."""
        for datagram in data:
            self.datagram_received(datagram, addr)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.ended(str(exc) if exc else "QUIC transport closed")

    # ------------------------------------------------------------ driving

    def transmit_soon(self) -> None:
        """Transmit once, later in this turn of the event loop."""
        if not self._transmit_pending:
            self._transmit_pending = True
            self.loop.call_soon(self.transmit)

    def transmit(self) -> None:
        """Send what the engine has to send now, and arm the timer for its next deadline."""
        self._transmit_pending = False
        transport = self.udp
        if transport is None or self._failed:
            return
        now = clock()
        sendto = transport.sendto
        try:
            datagrams = self.datagrams_to_send(now)
        except self.engine_errors as exc:
            self.failed(exc)
            return
        for data, addr in datagrams:
            sendto(data, addr)
        if self.handler is not None:
            self.handler.transmitted()
        deadline = self.quic.get_timer()
        if deadline is None:
            if self._wake is not None:
                self._wake.cancel()
                self._wake, self._wake_at = None, math.inf
        elif deadline < self._wake_at:
            if self._wake is not None:
                self._wake.cancel()
            self._wake_at = deadline
            self._wake = self.loop.call_later(max(0.0, deadline - now), self._timer_fired)

    def _timer_fired(self) -> None:
        self._wake, self._wake_at = None, math.inf
        if self._failed:
            return
        try:
            self.quic.handle_timer(now=clock())
        except self.engine_errors as exc:
            self.failed(exc)
            return
        self.dispatch_events()
        self.transmit()

    def quic_event_received(self, event: object) -> None:
        if isinstance(event, self.handshake_event):
            if not self.handshake.done():
                self.handshake.set_result(None)
            if self.handler is not None:
                self.handler.handshake_completed()
        elif isinstance(event, self.stream_event):
            stream_id: int = event.stream_id  # type: ignore[attr-defined]
            if self.handler is None:
                if self.accept is None:
                    return
                self.handler = self.accept(self, stream_id)
                if self.handler is None:
                    return
            self.handler.stream_data(stream_id, event.data, event.end_stream)  # type: ignore[attr-defined]
        elif isinstance(event, self.terminated_event):
            code = event.error_code  # type: ignore[attr-defined]
            self.ended(event.reason_phrase or f"QUIC connection closed ({code})")  # type: ignore[attr-defined]

    def failed(self, exc: Exception) -> None:
        """The engine cannot go on with this connection: try to tell the other
        side, stop driving it, have a listener forget it, and end it, saying why."""
        if self._failed:
            return
        self._failed = True
        if self._wake is not None:
            self._wake.cancel()
            self._wake, self._wake_at = None, math.inf
        with contextlib.suppress(*self.engine_errors):
            self.quic.close()
            if self.udp is not None:
                for data, addr in self.datagrams_to_send(clock()):
                    self.udp.sendto(data, addr)
        self.forget()
        self.ended(f"QUIC engine error: {exc}")

    def ended(self, reason: str) -> None:
        """The connection is over (once): fail a pending dial, tell the handler."""
        if self._lost:
            return
        self._lost = True
        # The timer stays armed: a closing connection still has its draining to
        # finish, after which a listener forgets it.
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError(reason))
        if self.handler is not None:
            self.handler.ended(reason)


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
