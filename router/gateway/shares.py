"""Each node's share of the homeserver behind the inbound gateway.

A node may keep some streams open at once (``max_streams_per_peer``, below the
gateway's ``max_streams``, so that one node cannot take every slot), and send
requests at a steady rate with a burst (a token bucket per node key).  The
defaults leave a wide margin over real traffic: :data:`REQUESTS_PER_S` and
:data:`REQUEST_BURST` say where they come from.  The busiest node's request
counts in one and in ten seconds are kept, so an operator can see how close
real peers come.

Sans-I/O: every call takes ``now``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from router.routing.budget import TokenBucket

REQUESTS_PER_S = 20.0
"""Requests a second one node may send on average.  In the end-to-end runs
(two Synapses, and Synapse with Dendrite: rooms made on each side, joined
from the other, messages both ways) the busiest node sent at most 5
requests in one second and 9 in ten; this is four times the busiest second,
sustained.  A join of a large room asks for more (its events, in bursts),
which the burst takes, and a homeserver told 429 backs off and retries."""
REQUEST_BURST = 200.0
"""Requests one node may send at once after a quiet spell: forty times the
busiest second measured (5 requests)."""
MAX_TRACKED = 4096
"""Nodes whose buckets are kept once they have no stream open; the least
recently seen is forgotten first (and starts afresh with a full bucket)."""


@dataclass(frozen=True, slots=True)
class ShareLimits:
    requests_per_second: float = REQUESTS_PER_S
    request_burst: float = REQUEST_BURST
    max_streams: int = 256
    max_streams_per_peer: int = 64


class _Peer:
    __slots__ = ("bucket", "count_1s", "count_10s", "streams", "window_1s", "window_10s")

    def __init__(self, limits: ShareLimits, now: float) -> None:
        self.bucket = TokenBucket(limits.requests_per_second, limits.request_burst, now)
        self.streams = 0
        self.window_1s = self.window_10s = now
        self.count_1s = self.count_10s = 0


class Shares:
    """Streams and requests per node key."""

    def __init__(self, limits: ShareLimits) -> None:
        self.limits = limits
        self.active = 0
        """Streams open, from all nodes."""
        self.peak_1s = 0
        """The most requests one node sent within one one-second window."""
        self.peak_10s = 0
        """And within one ten-second window."""
        self._peers: OrderedDict[bytes, _Peer] = OrderedDict()

    def open_stream(self, peer: bytes, now: float) -> str | None:
        """Take a stream slot for ``peer``; None if taken, else why not."""
        if self.active >= self.limits.max_streams:
            return "too many streams"
        state = self._peer(peer, now)
        if state.streams >= self.limits.max_streams_per_peer:
            return "one node's share of streams"
        state.streams += 1
        self.active += 1
        return None

    def close_stream(self, peer: bytes) -> None:
        state = self._peers.get(peer)
        if state is not None and state.streams > 0:
            state.streams -= 1
            self.active -= 1

    def streams_of(self, peer: bytes) -> int:
        state = self._peers.get(peer)
        return state.streams if state is not None else 0

    def admit_request(self, peer: bytes, now: float) -> int | None:
        """Count a request from ``peer``; None if it may go on, else the whole
        seconds after which one more would be let through (for Retry-After)."""
        state = self._peer(peer, now)
        if now - state.window_1s >= 1.0:
            state.window_1s, state.count_1s = now, 0
        if now - state.window_10s >= 10.0:
            state.window_10s, state.count_10s = now, 0
        state.count_1s += 1
        state.count_10s += 1
        self.peak_1s = max(self.peak_1s, state.count_1s)
        self.peak_10s = max(self.peak_10s, state.count_10s)
        if state.bucket.take(now):
            return None
        missing = 1.0 - state.bucket.tokens
        return max(1, math.ceil(missing / self.limits.requests_per_second))

    def _peer(self, peer: bytes, now: float) -> _Peer:
        state = self._peers.get(peer)
        if state is None:
            state = self._peers[peer] = _Peer(self.limits, now)
            if len(self._peers) > MAX_TRACKED:
                self._forget_one_idle()
        else:
            self._peers.move_to_end(peer)
        return state

    def _forget_one_idle(self) -> None:
        for key, state in self._peers.items():
            if state.streams == 0:
                del self._peers[key]
                return
