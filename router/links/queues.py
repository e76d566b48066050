"""Per-peer send queues: protocol frames first, then traffic, fair between sources.

Protocol frames (announcements, bootstraps, broadcasts, keepalives) are few and
keep the network together, so they are never delayed behind traffic; their
queue is bounded too, and a peer that lets it fill is closed by the caller.
Traffic is queued per source (the port it came in on, or the node itself) and
served round-robin, so one busy source cannot starve the others; each source's
queue is bounded and, when full, drops its oldest frame (as the reference's
fair queue does), counting the drop.
"""

from __future__ import annotations

from collections import deque


class FairQueue:
    """Bounded round-robin traffic queue keyed by source."""

    __slots__ = ("_bytes", "_order", "_queues", "bytes_per_source", "dropped", "frames", "per_source")

    def __init__(self, per_source: int, bytes_per_source: int = 1 << 62) -> None:
        self.per_source = per_source
        self.bytes_per_source = bytes_per_source
        self._queues: dict[int, deque[bytes]] = {}
        self._bytes: dict[int, int] = {}
        self._order: deque[int] = deque()
        self.frames = 0
        self.dropped = 0

    def push(self, source: int, data: bytes) -> None:
        queue = self._queues.get(source)
        if queue is None:
            queue = self._queues[source] = deque()
            self._bytes[source] = 0
            self._order.append(source)
        held = self._bytes[source] + len(data)
        while queue and (len(queue) >= self.per_source or held > self.bytes_per_source):
            held -= len(queue.popleft())
            self.dropped += 1
            self.frames -= 1
        queue.append(data)
        self._bytes[source] = held
        self.frames += 1

    def pop_batch(self, budget: int, out: list[bytes]) -> int:
        """Append frames to ``out``, one per source in turn, up to ``budget`` bytes."""
        taken = 0
        order = self._order
        queues = self._queues
        if len(order) == 1:
            # One source (the common case on a transit link): no round-robin.
            source = order[0]
            queue = queues[source]
            popleft = queue.popleft
            append = out.append
            count = 0
            while queue and taken < budget:
                data = popleft()
                append(data)
                taken += len(data)
                count += 1
            self.frames -= count
            self._bytes[source] -= taken
            if not queue:
                del queues[source], self._bytes[source]
                order.clear()
            return taken
        while order and taken < budget:
            source = order[0]
            queue = queues[source]
            data = queue.popleft()
            out.append(data)
            taken += len(data)
            self._bytes[source] -= len(data)
            self.frames -= 1
            order.rotate(-1)
            if not queue:
                del queues[source], self._bytes[source]
                order.remove(source)
        return taken

    def __len__(self) -> int:
        return self.frames
