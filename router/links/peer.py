"""A peering, whatever carries it: handshake, frame reassembly, batched writes.

TCP and TLS connections are one directly; WebSocket and QUIC peerings reach it
through :mod:`router.links.adapter`.

Both sides send their 104-byte handshake at once; the other side's must arrive
within the handshake deadline and verify, else the connection is closed.  Then
frames follow back to back.  Reassembly never holds more than one maximum-size
frame of unparsed bytes per peer; a frame without the magic bytes or with an
impossible length closes the peering.

Writes are batched: frames are queued (protocol first, then fair traffic) and
one ``transport.write`` per peer per turn of the event loop sends what has
accumulated.  The kernel and the transport are kept to small buffers (see
:mod:`router.links.tcp_socket`), so what waits, waits in the fair queues; when
they are full (``pause_writing``) the queues hold, frames that stand too long
are dropped, and the runtime pauses reading from the peers whose traffic is
waiting for this one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from time import monotonic
from typing import TYPE_CHECKING, cast

from router.links.adapter import HIGH_WATER_BYTES, CarrierTransport
from router.links.queues import FairQueue
from router.links.tcp_socket import (
    SEND_BUFFER_RETUNE_S,
    kernel_queues,
    path_dead,
    retune_send_buffer,
    tcp_rtt_s,
    tune_peer_socket,
)
from router.routing.constants import LINK_TYPE_MULTICAST, LINK_TYPE_REMOTE
from router.wire.errors import DecodeError
from router.wire.fastpath import cut_frames, frame_length, traffic_flow
from router.wire.frames import FRAME_HEADER_SIZE, FRAME_TYPE_INDEX
from router.wire.handshake import HANDSHAKE_SIZE, Handshake, handshake_key, parse_handshake

if TYPE_CHECKING:
    from router.links.owner import LinkOwner

WRITE_BATCH_BYTES = 64 * 1024
PROTO_QUEUE_MAX_BYTES = 4 * 1024 * 1024
TRAFFIC_QUEUE_MAX_BYTES = 4 * 1024 * 1024
PAUSE_SOURCES_BYTES = 128 * 1024
"""Traffic queued for a peer from one source port past which that source is paused."""
MAX_READ_PAUSE_S = 1.0
"""A source is never paused longer than this: then the fair queue drops instead,
as the reference does, so a stuck link cannot starve the peers feeding it (nor
deadlock a cycle of busy links)."""
WRITE_STALL_TIMEOUT_S = 5.0
"""A peer that takes none of our bytes for this long is closed."""
PATH_CHECK_S = 0.25
"""How often a sending peering asks the kernel whether its path still acknowledges."""
PATH_DEAD_REASON = "the path stopped acknowledging"


class PeerLink(asyncio.Protocol):
    """One TCP connection to a peer, before and after its handshake."""

    def __init__(
        self,
        node: LinkOwner,
        outbound: str | None,
        scheme: str = "tcp",
        link_type: int = LINK_TYPE_REMOTE,
        expected_key: bytes | None = None,
    ) -> None:
        self.node = node
        self.scheme = scheme
        self.link_type = link_type  # the reference's peer type: 1 multicast, 3 remote
        self.expected_key = expected_key  # a key pinned with ?key=, if any
        self.certificate_key: bytes | None = None
        self.outbound = outbound  # the peer URI we dialled, or None for inbound
        self.transport: asyncio.Transport | None = None
        self.remote = ""
        self.local_host = ""  # our end's address, where the carrier says
        self.local_scope = 0  # and its IPv6 scope (the interface's index), if any
        self.port = 0
        self.handshake: Handshake | None = None
        self.network = ""  # the source network (/24, /64) of an inbound link
        self.restricted = False  # its network is over budget: only known keys get in
        self.charged = False  # its failure has been charged to its network
        self.closed = False
        self.close_reason = ""
        self._buffer = bytearray()
        self._proto: deque[bytes] = deque()
        settings = node.link_settings
        self.traffic = FairQueue(
            settings.traffic_queue_frames, TRAFFIC_QUEUE_MAX_BYTES, settings.queue_target_s
        )
        # Sources feeding this link are paused once this many bytes wait.
        self.pause_bytes = PAUSE_SOURCES_BYTES
        self._flush_scheduled = False
        self._retune_at = 0.0
        self._tcp_socket: object = None  # the TCP socket under the carrier, where there is one
        self._path_check_at = 0.0
        self.send_buffer = 0  # as last set to follow the path (0: not yet, or not ours to set)
        self.writing_paused = False
        self.reading_paused = False  # paused for backpressure
        self.backlog: deque[bytes] = deque()  # frames read but not yet handled
        self.backlog_paused = False  # paused until the backlog is worked off
        self.waiting_sources: set[int] = set()
        self._deadline: asyncio.TimerHandle | None = None
        self._proto_bytes = 0
        self.proto_dropped = 0
        self._resume_handle: asyncio.TimerHandle | None = None
        self._stall_handle: asyncio.TimerHandle | None = None
        self.bytes_in = self.bytes_out = self.frames_in = self.frames_out = 0
        self.established_at: float | None = None  # loop time the handshake completed
        loop = asyncio.get_running_loop()
        self.established: asyncio.Future[bool] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()

    # ------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=HIGH_WATER_BYTES)
        settings = self.node.link_settings
        sock = (
            transport.stream_socket()
            if isinstance(transport, CarrierTransport)
            else transport.get_extra_info("socket")
        )
        if tune_peer_socket(sock, settings.receive_buffer, settings.send_buffer):
            self._tcp_socket = sock  # its path is watched, and its send buffer follows it, while we send
            self.send_buffer = settings.send_buffer
        if self.scheme == "tls":
            from router.links.tls import peer_certificate_key  # noqa: PLC0415  (x509 only for TLS)

            self.certificate_key = peer_certificate_key(transport.get_extra_info("ssl_object"))
        sockname = transport.get_extra_info("sockname")
        self.local_host = str(sockname[0]) if isinstance(sockname, tuple) and sockname else ""
        if isinstance(sockname, tuple) and len(sockname) >= 4 and isinstance(sockname[3], int):
            self.local_scope = sockname[3]
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if peer else "?"
        self.remote = f"[{host}]:{peer[1]}" if peer and ":" in host else f"{host}:{peer[1]}" if peer else "?"
        if not self.node.admit_handshake(self):
            return
        self.transport.write(self.node.handshake_bytes)
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self.node.link_settings.handshake_timeout, self._handshake_expired)

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        if self.handshake is None:
            buf = self._buffer
            buf += data
            if len(buf) < HANDSHAKE_SIZE:
                return
            head = bytes(buf[:HANDSHAKE_SIZE])
            if not self.node.key_admissible(self, handshake_key(head)):
                return
            try:
                self.handshake = parse_handshake(head)
            except DecodeError as exc:
                self.close(f"bad handshake: {exc}")
                return
            data = bytes(buf[HANDSHAKE_SIZE:])  # whatever came after it: frames
            buf.clear()
            if self._deadline is not None:
                self._deadline.cancel()
            self.established_at = asyncio.get_running_loop().time()
            if not self.node.link_established(self):
                return
        self._parse_frames(data)

    def _parse_frames(self, data: bytes) -> None:
        """Cut the frames out of ``data``, after whatever part of one an earlier
        read left in the buffer.  Frames are sliced from the bytes as they
        arrived (one copy each); only a frame that spans two reads is put
        together in the buffer, which so never holds more than one frame."""
        buf = self._buffer
        frames: list[bytes] = []
        start = 0
        if buf:
            start = self._complete_frame(data, frames)
            if start < 0:
                return  # still not whole, or the link was closed
        try:
            offset = cut_frames(data, start, frames)
        except DecodeError as exc:
            self.close(str(exc))
            return
        if offset < len(data):
            buf += memoryview(data)[offset:]
        if frames:
            self.frames_in += len(frames)
            self.node.frames_received(self, frames)

    def _complete_frame(self, data: bytes, frames: list[bytes]) -> int:
        """Complete the frame begun in the buffer from the start of ``data``:
        where in ``data`` the next frame starts once it is whole (and in
        ``frames``), or -1 (all of ``data`` went to it, or the link closed)."""
        buf = self._buffer
        taken = 0
        if len(buf) < FRAME_HEADER_SIZE:
            taken = min(FRAME_HEADER_SIZE - len(buf), len(data))
            buf += data[:taken]
            if len(buf) < FRAME_HEADER_SIZE:
                return -1
        try:
            length = frame_length(bytes(buf[:FRAME_HEADER_SIZE]), 0)
        except DecodeError as exc:
            self.close(str(exc))
            return -1
        more = min(length - len(buf), len(data) - taken)
        buf += data[taken : taken + more]
        taken += more
        if len(buf) < length:
            return -1
        frames.append(bytes(buf))
        buf.clear()
        return taken

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            self.close_reason = self.close_reason or (str(exc) if exc else "connection closed by peer")
        for handle in (self._deadline, self._resume_handle, self._stall_handle):
            if handle is not None:
                handle.cancel()
        self.node.link_lost(self)
        if not self.established.done():
            self.established.set_result(False)
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        self.writing_paused = True
        if self._stall_handle is None:
            self._stall_handle = asyncio.get_running_loop().call_later(
                WRITE_STALL_TIMEOUT_S, self._write_stalled
            )

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self._stall_handle is not None:
            self._stall_handle.cancel()
            self._stall_handle = None
        self.node.link_writable(self)
        self._schedule_flush()

    def _write_stalled(self) -> None:
        self._stall_handle = None
        if self.writing_paused:
            self.close(f"peer took none of our bytes for {WRITE_STALL_TIMEOUT_S:.0f} s")

    # ------------------------------------------------------------ sending

    def send_proto(self, data: bytes) -> None:
        # Bounded by bytes; when full the oldest frame goes (a stalled peer is
        # closed by the write-stall timeout, not by what others relay to it).
        while self._proto and self._proto_bytes + len(data) > PROTO_QUEUE_MAX_BYTES:
            self._proto_bytes -= len(self._proto.popleft())
            self.proto_dropped += 1
        self._proto.append(data)
        self._proto_bytes += len(data)
        self._schedule_flush()

    def send_traffic(self, source: int, data: bytes) -> None:
        """Queue a traffic frame that came in on port ``source`` (0: this node's own)."""
        self.traffic.push(source, traffic_flow(data), data, monotonic())
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and not self.closed:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Write what is queued, protocol frames first, in as few writes as the
        transport takes before it asks us to pause."""
        self._flush_scheduled = False
        transport = self.transport
        if self.closed or transport is None:
            return
        proto = self._proto
        traffic = self.traffic
        control = self.node.control_bytes_out
        now = monotonic()
        while (proto or traffic) and not self.writing_paused:
            batch: list[bytes] = []
            taken = 0
            while proto and taken < WRITE_BATCH_BYTES:
                data = proto.popleft()
                batch.append(data)
                taken += len(data)
                control[data[FRAME_TYPE_INDEX]] += len(data)
            self._proto_bytes -= taken
            if taken < WRITE_BATCH_BYTES:
                taken += traffic.pop_batch(WRITE_BATCH_BYTES - taken, batch, now)
            if not batch:  # every frame taken was dropped for its wait
                continue
            self.frames_out += len(batch)
            self.bytes_out += taken
            transport.write(b"".join(batch))  # may call pause_writing() at once
        if self._tcp_socket is not None and now >= self._path_check_at:
            # A link that went silent (out of radio range, a cable pulled) is
            # found from the kernel's retransmissions within a second or two of
            # sending into it, not at the keepalive deadline five seconds on.
            self._path_check_at = now + PATH_CHECK_S
            if path_dead(self._tcp_socket):
                self.close(PATH_DEAD_REASON)
                return
        if self._tcp_socket is not None and self.send_buffer and now >= self._retune_at:
            self._retune_at = now + SEND_BUFFER_RETUNE_S
            size = retune_send_buffer(self._tcp_socket, self.node.link_settings.send_buffer)
            if size is not None:
                self.send_buffer = size
        if self.waiting_sources and not self.writing_paused:
            self.node.link_writable(self)

    def pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None and not self.closed:
            self.reading_paused = True
            if not self.backlog_paused:
                self.transport.pause_reading()
            self._resume_handle = asyncio.get_running_loop().call_later(MAX_READ_PAUSE_S, self.resume_reading)

    def resume_reading(self) -> None:
        if self._resume_handle is not None:
            self._resume_handle.cancel()
            self._resume_handle = None
        if self.reading_paused and self.transport is not None and not self.closed:
            self.reading_paused = False
            if not self.backlog_paused:
                self.transport.resume_reading()

    def pause_for_backlog(self) -> None:
        """Read no more until the frames already read have been handled."""
        if not self.backlog_paused and self.transport is not None and not self.closed:
            self.backlog_paused = True
            if not self.reading_paused:
                self.transport.pause_reading()

    def resume_after_backlog(self) -> None:
        if self.backlog_paused and self.transport is not None and not self.closed:
            self.backlog_paused = False
            if not self.reading_paused:
                self.transport.resume_reading()

    # ------------------------------------------------------------ closing

    def _handshake_expired(self) -> None:
        if self.handshake is None:
            self.close("no handshake within the deadline")

    def close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        if self.transport is not None:
            self.transport.abort()

    @property
    def queue_depth(self) -> int:
        return len(self._proto) + len(self.traffic)

    @property
    def remote_host(self) -> str:
        """The peer's address without its port."""
        host, _, _ = self.remote.rpartition(":")
        return host.strip("[]") if host else self.remote

    @property
    def kind(self) -> str:
        """What operators see as the link type: the scheme, or "multicast" if discovered."""
        return "multicast" if self.link_type == LINK_TYPE_MULTICAST else self.scheme

    def rtt_s(self) -> float | None:
        """The round trip as the carrier knows it: the kernel's estimate for
        TCP and TLS, QUIC's own for QUIC; None if unknown."""
        transport = self.transport
        if transport is None:
            return None
        if isinstance(transport, CarrierTransport):
            return transport.rtt_s()
        return tcp_rtt_s(transport.get_extra_info("socket"))

    def kernel_queues(self) -> tuple[int, int] | None:
        """Bytes in the kernel for this peering: (unread, unacknowledged); None
        for carriers that are not a socket of our own, or when unknown."""
        transport = self.transport
        if transport is None or isinstance(transport, CarrierTransport):
            return None
        return kernel_queues(transport.get_extra_info("socket"))

    @property
    def queue_wait_p50_s(self) -> float:
        """The median wait of the latest traffic frames sent, in seconds (NaN: none yet)."""
        waits = self.traffic.sojourn_quantiles()
        return waits[0] if waits is not None else float("nan")

    @property
    def queue_wait_p99_s(self) -> float:
        """The 99th percentile wait of the latest traffic frames sent, in seconds (NaN: none yet)."""
        waits = self.traffic.sojourn_quantiles()
        return waits[1] if waits is not None else float("nan")

    @property
    def dropped(self) -> int:
        return self.traffic.dropped + self.traffic.late + self.proto_dropped
