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

``struct tcp_info`` starts with eight one-byte fields and then 32-bit ones;
``tcpi_rtt``, the smoothed round trip in microseconds, is the sixteenth of
those.  Where an option is missing (not Linux) or the socket is not TCP, the
answer is None, and tuning is skipped: never an error.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import termios

TCP_INFO = getattr(socket, "TCP_INFO", None)
TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", None)
RTT_OFFSET = 8 + 15 * 4
INFO_BYTES = RTT_OFFSET + 4
NOTSENT_LOWAT_BYTES = 128 * 1024
"""Unsent bytes the kernel holds for a peering at most: about 1.5 ms at 85 MB/s.
16 KiB waited less but cost the sender a quarter more processor time per frame
in smaller writes."""
SIOCINQ = termios.FIONREAD
SIOCOUTQ = termios.TIOCOUTQ


def tcp_rtt_s(sock: object) -> float | None:
    """The smoothed round trip of a connected TCP socket in seconds, or None."""
    getsockopt = getattr(sock, "getsockopt", None)
    if TCP_INFO is None or getsockopt is None:
        return None
    try:
        info = getsockopt(socket.IPPROTO_TCP, TCP_INFO, INFO_BYTES)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(info, bytes) or len(info) < INFO_BYTES:
        return None
    (rtt_us,) = struct.unpack_from("=I", info, RTT_OFFSET)
    return rtt_us / 1e6 if rtt_us else None


def tune_peer_socket(sock: object, receive_buffer: int) -> bool:
    """Keep a peering's kernel queues short (see the module's docstring);
    whether the socket took the options.  ``receive_buffer`` 0 leaves the
    receive side to the kernel."""
    setsockopt = getattr(sock, "setsockopt", None)
    if setsockopt is None or TCP_NOTSENT_LOWAT is None:
        return False
    try:
        setsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT, NOTSENT_LOWAT_BYTES)
        if receive_buffer:
            setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    except (OSError, ValueError, TypeError):
        return False
    return True


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
