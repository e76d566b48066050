"""Per-peer traffic queues: fair between sources at every hop, bounded in time.

A peer's traffic queue is two levels of round-robin.  The first level is the
port a frame came in on (or the node itself), so a peer that claims many
source keys still gets one share; the second is the frame's source key within
that port, so that behind one neighbour a heavy sender and a light one (a
flood and a ping) do not share a first-in-first-out line, at this hop or any
later one.

Every frame carries the time it was queued.  As in CoDel (RFC 8289), a flow
whose frames have waited longer than the target delay for a whole interval
starts losing frames from its head, more often the longer it stays above; a
flow that drains below the target stops.  A sender that reacts to loss slows
down; one that does not is cut to its share.  The byte bound is a last resort
for memory: past it, the flow holding the most bytes loses its oldest frames.
Each frame's sojourn time is sampled, so an operator can see how long traffic
waits in front of each peer.

Sans-I/O: callers pass the time; nothing here reads a clock.
"""

from __future__ import annotations

from collections import deque
from math import sqrt

CODEL_TARGET_S = 0.005
"""Delay a flow's frames may stand in the queue before it is marked for dropping."""
CODEL_INTERVAL_S = 0.100
"""How long a flow must stay above the target before its first drop."""
DROP_FLOOR_BYTES = 4096
"""A flow holding less than this is never dropped for delay: it cannot be a standing queue."""
SOJOURN_SAMPLES = 1024
"""How many of the latest frames' waits are kept for the quantiles (a power of two)."""


class _Flow:
    """One source's frames in one port's share, with its CoDel state."""

    __slots__ = ("count", "data", "drop_next", "dropping", "first_above", "size", "times")

    def __init__(self) -> None:
        self.data: deque[bytes] = deque()
        self.times: deque[float] = deque()
        self.size = 0
        self.first_above = 0.0  # when the flow will have stood above target for an interval
        self.drop_next = 0.0
        self.count = 0  # drops in the current dropping state
        self.dropping = False


class _Port:
    """The flows that came in on one port, served round-robin."""

    __slots__ = ("flows", "order", "size")

    def __init__(self) -> None:
        self.flows: dict[int, _Flow] = {}
        self.order: deque[int] = deque()
        self.size = 0


class FairQueue:
    """Round-robin by port, then by source within a port; CoDel per source."""

    __slots__ = (
        "_order",
        "_ports",
        "_sample_count",
        "_samples",
        "dropped",
        "frames",
        "interval_s",
        "late",
        "max_bytes",
        "per_flow",
        "size",
        "target_s",
    )

    def __init__(
        self,
        per_flow: int,
        max_bytes: int,
        target_s: float = CODEL_TARGET_S,
        interval_s: float = CODEL_INTERVAL_S,
    ) -> None:
        self.per_flow = per_flow
        self.max_bytes = max_bytes
        self.target_s = target_s
        self.interval_s = interval_s
        self._ports: dict[int, _Port] = {}
        self._order: deque[int] = deque()
        self.frames = 0
        self.size = 0
        self.dropped = 0  # over a bound: frames or bytes
        self.late = 0  # dropped for standing above the target delay
        self._samples = [0.0] * SOJOURN_SAMPLES
        self._sample_count = 0

    def push(self, port: int, flow: int, data: bytes, now: float) -> None:
        """Queue ``data``, which came in on ``port`` from the source ``flow``."""
        share = self._ports.get(port)
        if share is None:
            share = self._ports[port] = _Port()
            self._order.append(port)
        queue = share.flows.get(flow)
        if queue is None:
            queue = share.flows[flow] = _Flow()
            share.order.append(flow)
        elif len(queue.data) >= self.per_flow:
            self._drop_head(share, queue)
        queue.data.append(data)
        queue.times.append(now)
        size = len(data)
        queue.size += size
        share.size += size
        self.size += size
        self.frames += 1
        if self.size > self.max_bytes:
            self._shed()

    def _drop_head(self, share: _Port, queue: _Flow) -> None:
        size = len(queue.data.popleft())
        queue.times.popleft()
        queue.size -= size
        share.size -= size
        self.size -= size
        self.frames -= 1
        self.dropped += 1

    def _shed(self) -> None:
        """Over the byte bound: the fattest flow of the fattest port loses its
        oldest frames until a sixteenth of the bound is free (one scan pays for
        many pushes)."""
        floor = self.max_bytes - self.max_bytes // 16
        while self.size > floor:
            port = max(self._ports, key=lambda p: self._ports[p].size)
            share = self._ports[port]
            flow = max(share.flows, key=lambda f: share.flows[f].size)
            queue = share.flows[flow]
            while queue.data and self.size > floor:
                self._drop_head(share, queue)
            if not queue.data:
                self._retire(port, share, flow)

    def _retire(self, port: int, share: _Port, flow: int) -> None:
        """Forget an empty flow, and its port if it was the port's last."""
        del share.flows[flow]
        share.order.remove(flow)
        if not share.flows:
            del self._ports[port]
            self._order.remove(port)

    def _late(self, queue: _Flow, now: float) -> bool:
        """Whether CoDel drops the frame just taken from ``queue``'s head, which
        waited at least the target."""
        if queue.size < DROP_FLOOR_BYTES:
            queue.first_above = 0.0
            queue.dropping = False
            return False
        if queue.first_above == 0.0:
            queue.first_above = now + self.interval_s
            return False
        if now < queue.first_above:
            return False
        if not queue.dropping:
            queue.dropping = True
            # Back to near the last drop rate if the flow was dropping recently.
            recent = now - queue.drop_next < 16 * self.interval_s
            queue.count = queue.count - 2 if recent and queue.count > 2 else 1
            queue.drop_next = now + self.interval_s / sqrt(queue.count)
            return True
        if now >= queue.drop_next:
            queue.count += 1
            queue.drop_next += self.interval_s / sqrt(queue.count)
            return True
        return False

    def pop_batch(self, budget: int, out: list[bytes], now: float) -> int:
        """Append frames to ``out`` in fair order, up to ``budget`` bytes; the bytes taken."""
        taken = 0
        order = self._order
        ports = self._ports
        samples = self._samples
        mask = SOJOURN_SAMPLES - 1
        target = self.target_s
        while order and taken < budget:
            port = order[0]
            share = ports[port]
            flow = share.order[0]
            queue = share.flows[flow]
            data_queue = queue.data
            times = queue.times
            # One turn: a single frame, or while this is the only flow, as many
            # as the budget allows (the common case on a transit link).
            alone = len(order) == 1 and len(share.order) == 1
            while True:
                data = data_queue.popleft()
                sojourn = now - times.popleft()
                size = len(data)
                queue.size -= size
                share.size -= size
                self.size -= size
                self.frames -= 1
                if sojourn < target:
                    queue.first_above = 0.0
                    queue.dropping = False
                    late = False
                else:
                    late = self._late(queue, now)
                if late:
                    self.late += 1
                else:
                    out.append(data)
                    taken += size
                    samples[self._sample_count & mask] = sojourn
                    self._sample_count += 1
                if not alone or not data_queue or taken >= budget:
                    break
            if data_queue:
                share.order.rotate(-1)
            else:
                self._retire(port, share, flow)  # at the heads of both orders: cheap
            if share.flows:
                order.rotate(-1)
        return taken

    def port_size(self, port: int) -> int:
        """Bytes queued that came in on ``port``."""
        share = self._ports.get(port)
        return 0 if share is None else share.size

    def sojourn_quantiles(self) -> tuple[float, float] | None:
        """The median and 99th percentile wait, in seconds, of the latest
        frames sent (up to :data:`SOJOURN_SAMPLES`); None before the first."""
        count = min(self._sample_count, SOJOURN_SAMPLES)
        if count == 0:
            return None
        waits = sorted(self._samples[:count])
        return waits[count // 2], waits[min(count - 1, (count * 99) // 100)]

    def __len__(self) -> int:
        return self.frames
