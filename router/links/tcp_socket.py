"""The kernel's round-trip estimate for a TCP connection (Linux's ``TCP_INFO``).

``struct tcp_info`` starts with eight one-byte fields and then 32-bit ones;
``tcpi_rtt``, the smoothed round trip in microseconds, is the sixteenth of
those.  Where the option is missing (not Linux) or the socket is not TCP, the
answer is None: an unknown round trip, never an error.
"""

from __future__ import annotations

import socket
import struct

TCP_INFO = getattr(socket, "TCP_INFO", None)
RTT_OFFSET = 8 + 15 * 4
INFO_BYTES = RTT_OFFSET + 4


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
