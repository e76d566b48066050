"""The connections of one local server, bounded, with room kept for real clients.

A local process can open many connections and send nothing on them.  When the
table is full, the oldest connection that has not yet made a request is closed
to make room for the new one; only when every connection is busy with a
request is the newcomer turned away (the server then answers 503).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict


class ConnectionTable:
    """Connections in progress on one server; idle ones give way to new ones."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.active = 0
        self.evicted = 0
        self._idle: OrderedDict[asyncio.WriteTransport, None] = OrderedDict()

    def admit(self, transport: asyncio.WriteTransport) -> bool:
        """Take a new connection, closing the oldest idle one if the table is
        full; False if every connection is busy."""
        if self.active >= self.capacity:
            if not self._idle:
                return False
            oldest, _ = self._idle.popitem(last=False)
            oldest.abort()  # its handler unwinds and calls release()
            self.evicted += 1
        self.active += 1
        self._idle[transport] = None
        return True

    def busy(self, transport: asyncio.WriteTransport) -> None:
        """The connection has made a request: it is no longer idle."""
        self._idle.pop(transport, None)

    def release(self, transport: asyncio.WriteTransport) -> None:
        self._idle.pop(transport, None)
        self.active -= 1
