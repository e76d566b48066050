"""What a stream peering asks of the kernel's TCP socket, and learns from it.

Queues in the kernel are first in, first out, and on a fast link they grow to
megabytes: the send buffer autotunes to what the window allows, and the receive
buffer to what the connection's round trips suggest.  A frame behind such a
queue waits whatever else is in it, however the node schedules.  So a peering
keeps little in the kernel on either side:

- ``TCP_NOTSENT_LOWAT`` stops the kernel from taking more than
  :data:`NOTSENT_LOWAT_BYTES` that it has not yet sent; the rest waits in the
  node's fair queues, where it can still be scheduled and dropped.
- A fixed receive buffer bounds what waits between two nodes when the receiving
  one is the slower: the sender's window then closes, and the queue forms in
  the sender's fair queues instead of in the receiver's kernel.  It also bounds
  a peering's rate to about one buffer per round trip, so the size is a
  setting: 0 leaves it to the kernel.
- The send buffer bounds what is in flight, and in flight is where a queue
  stands when the receiver is the slower end (a busy node on a fast link):
  its unread bytes are our unacknowledged ones.  ``TCP_NOTSENT_LOWAT`` cannot
  see them.  So the send buffer starts small (a setting, 64 KiB by default)
  and follows the path: while a peering sends, it is set about once a second
  to what the path holds (:func:`send_buffer_for`: the delivery rate times
  the least round trip the kernel has seen), never below the setting; the
  kernel doubles the figure for its bookkeeping, which leaves room to grow.
  A path across a continent grows it within seconds; a loopback or LAN peering
  whose receiver falls behind keeps it at the floor.
- A link can go silent (out of radio range, a cable pulled): nothing is lost
  from the kernel's point of view until its retransmissions give up, minutes
  on.  While a peering sends, :func:`path_dead` asks the kernel whether what
  is in flight has gone unacknowledged through several retransmission
  timeouts; if so, the peering is closed then, a second or two after the
  first unanswered write, rather than at the keepalive deadline.

``struct tcp_info`` starts with eight one-byte fields and then 32-bit ones;
``tcpi_rtt``, the smoothed round trip in microseconds, is the sixteenth of
those; ``tcpi_min_rtt`` (microseconds) and ``tcpi_delivery_rate`` (bytes a
second, 64 bits) come later, from Linux 4.9.  Where an option is missing (not
Linux, an older kernel) or the socket is not TCP, the answer is None, and
tuning is skipped: never an error.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
from dataclasses import dataclass

TCP_INFO = getattr(socket, "TCP_INFO", None)
TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", None)
RTT_OFFSET = 8 + 15 * 4
INFO_BYTES = RTT_OFFSET + 4
MIN_RTT_OFFSET = 148
DELIVERY_RATE_OFFSET = 160
PATH_INFO_BYTES = DELIVERY_RATE_OFFSET + 8
SEND_BUFFER_CEILING_BYTES = 4 * 1024 * 1024
"""The most :func:`send_buffer_for` asks for (the kernel's usual wmem_max)."""
SEND_BUFFER_RETUNE_S = 1.0
"""How often a sending peering's send buffer is set again to follow its path."""
NOTSENT_LOWAT_BYTES = 128 * 1024
"""Unsent bytes the kernel holds for a peering at most: about 1.5 ms at 85 MB/s.
16 KiB waited less but cost the sender a quarter more processor time per frame
in smaller writes."""
RETRANSMITS_OFFSET = 2
UNACKED_OFFSET = 24
LAST_ACK_RECV_OFFSET = 56
DEAD_PATH_RETRANSMITS = 3
"""Timeouts in a row for the oldest unacknowledged segment before a path is
taken for dead: 1.4 s at the kernel's least timeout (200 ms, doubling), more on
a path with a longer round trip."""
DEAD_PATH_SILENCE_S = 1.0
"""And at least this long since the last acknowledgement."""
SIOCINQ = termios.FIONREAD
SIOCOUTQ = termios.TIOCOUTQ


def _tcp_info(sock: object, size: int) -> bytes | None:
    """The first ``size`` bytes of a connected TCP socket's ``struct tcp_info``,
    or None where the kernel or the socket cannot give that many."""
    getsockopt = getattr(sock, "getsockopt", None)
    if TCP_INFO is None or getsockopt is None:
        return None
    try:
        info = getsockopt(socket.IPPROTO_TCP, TCP_INFO, size)
    except (OSError, ValueError, TypeError):
        return None
    return info if isinstance(info, bytes) and len(info) >= size else None


def tcp_rtt_s(sock: object) -> float | None:
    """The smoothed round trip of a connected TCP socket in seconds, or None."""
    info = _tcp_info(sock, INFO_BYTES)
    if info is None:
        return None
    (rtt_us,) = struct.unpack_from("=I", info, RTT_OFFSET)
    return rtt_us / 1e6 if rtt_us else None


@dataclass(frozen=True, slots=True)
class PathEstimate:
    """What the kernel has measured of a TCP connection's path."""

    min_rtt_s: float
    """The least round trip seen lately (the path without queues)."""
    delivery_rate: float
    """Bytes a second the receiver acknowledged, as last sampled."""


def path_estimate(sock: object) -> PathEstimate | None:
    """The kernel's measure of a connected TCP socket's path, or None."""
    info = _tcp_info(sock, PATH_INFO_BYTES)
    if info is None:
        return None
    (min_rtt_us,) = struct.unpack_from("=I", info, MIN_RTT_OFFSET)
    (rate,) = struct.unpack_from("=Q", info, DELIVERY_RATE_OFFSET)
    return PathEstimate(min_rtt_us / 1e6, float(rate))


def send_buffer_for(path: PathEstimate, floor: int) -> int:
    """The send buffer for a path: its bandwidth-delay product, at least
    ``floor``, at most :data:`SEND_BUFFER_CEILING_BYTES` unless ``floor`` is
    more.  The kernel doubles what it is given, so a path that can go faster
    finds room to, and the next measure grows the buffer again.  (Twice the
    product let a busy receiver's own delays, which count in the least round
    trip on loopback, grow the loaded hops past the floor.)"""
    wanted = int(path.delivery_rate * path.min_rtt_s)
    return max(floor, min(wanted, SEND_BUFFER_CEILING_BYTES))


def set_send_buffer(sock: object, size: int) -> bool:
    """Set a socket's send buffer (the kernel stops autotuning it); whether it took it."""
    setsockopt = getattr(sock, "setsockopt", None)
    if setsockopt is None:
        return False
    try:
        setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
    except (OSError, ValueError, TypeError):
        return False
    return True


def tune_peer_socket(sock: object, receive_buffer: int, send_buffer: int = 0) -> bool:
    """Keep a peering's kernel queues short (see the module's docstring);
    whether the socket took the options.  ``receive_buffer`` 0 leaves the
    receive side to the kernel; ``send_buffer`` is where the send buffer
    starts (0: the kernel's autotuning, and no retuning)."""
    setsockopt = getattr(sock, "setsockopt", None)
    if setsockopt is None or TCP_NOTSENT_LOWAT is None:
        return False
    try:
        setsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT, NOTSENT_LOWAT_BYTES)
        if receive_buffer:
            setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        if send_buffer:
            setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    except (OSError, ValueError, TypeError):
        return False
    return True


def retune_send_buffer(sock: object, floor: int) -> int | None:
    """Set a sending peering's send buffer to follow its path (see
    :func:`send_buffer_for`); the size set, or None if the kernel cannot say."""
    path = path_estimate(sock)
    if path is None:
        return None
    size = send_buffer_for(path, floor)
    return size if set_send_buffer(sock, size) else None


def path_dead(sock: object) -> bool:
    """Whether a connected TCP socket's path has stopped acknowledging what we
    send: segments in flight, the oldest retransmitted on timeout
    :data:`DEAD_PATH_RETRANSMITS` times, and no acknowledgement for
    :data:`DEAD_PATH_SILENCE_S`.  A peer that is alive acknowledges, even when it
    stops reading (its window closes and nothing stays in flight), so this is a
    link that went silent: out of radio range, a cable pulled, a NAT that forgot
    the flow.  False where the kernel cannot say."""
    info = _tcp_info(sock, LAST_ACK_RECV_OFFSET + 4)
    if info is None:
        return False
    (unacked,) = struct.unpack_from("=I", info, UNACKED_OFFSET)
    (last_ack_ms,) = struct.unpack_from("=I", info, LAST_ACK_RECV_OFFSET)
    return (
        unacked > 0
        and info[RETRANSMITS_OFFSET] >= DEAD_PATH_RETRANSMITS
        and last_ack_ms >= DEAD_PATH_SILENCE_S * 1000
    )


def kernel_queues(sock: object) -> tuple[int, int] | None:
    """Bytes the kernel holds for a connected socket: (received and not yet
    read, written and not yet acknowledged); None if it cannot say."""
    fileno = getattr(sock, "fileno", None)
    if fileno is None:
        return None
    buffer = bytearray(4)
    try:
        fd = fileno()
        if fd < 0:
            return None
        fcntl.ioctl(fd, SIOCINQ, buffer)
        (unread,) = struct.unpack("=i", buffer)
        fcntl.ioctl(fd, SIOCOUTQ, buffer)
        (unsent,) = struct.unpack("=i", buffer)
    except (OSError, ValueError, TypeError):
        return None
    return unread, unsent
