"""Two or more sessions endpoints joined by a perfect in-memory network."""

from __future__ import annotations

from router.sessions.endpoint import Endpoint
from router.sessions.events import SessionEvent
from router.sessions.session import Limits
from router.wire.keys import Identity


class Net:
    """Endpoints by key; ``run`` delivers datagrams and fires timers on a fake clock."""

    def __init__(self, count: int, alpns: list[str] | None = None, limits: Limits | None = None) -> None:
        self.now = 1000.0
        self.ids = [Identity.generate() for _ in range(count)]
        self.endpoints = [Endpoint(i, alpns or ["matrix"], limits) for i in self.ids]
        self.by_key = {bytes(i.public_key): e for i, e in zip(self.ids, self.endpoints, strict=True)}
        self.events: dict[int, list[SessionEvent]] = {n: [] for n in range(count)}
        self.delivered = 0
        self.redirect: dict[bytes, bytes] = {}
        """Datagrams for a key go to another key's endpoint (a forger answering)."""
        self.offline: set[bytes] = set()
        self.spoof: dict[int, bytes] = {}
        """Datagrams from endpoint n claim another source key (the overlay does not
        authenticate a traffic frame's source key; only the session does)."""

    def key(self, n: int) -> bytes:
        return bytes(self.ids[n].public_key)

    def step(self) -> bool:
        moved = False
        for n, endpoint in enumerate(self.endpoints):
            source = self.spoof.get(n, self.key(n))
            for destination, payload in endpoint.datagrams_to_send(self.now):
                moved = True
                target = self.redirect.get(destination, destination)
                if target in self.offline or target not in self.by_key:
                    continue
                self.delivered += 1
                self.by_key[target].datagram_received(source, payload, self.now)
            self.events[n].extend(endpoint.events())
        return moved

    def run(self, seconds: float, tick: float = 0.005) -> None:
        end = self.now + seconds
        while self.now < end:
            while self.step():
                pass
            deadline = min(e.next_deadline() for e in self.endpoints)
            self.now = min(end, max(self.now + tick, deadline)) if deadline > self.now else self.now + tick
            for endpoint in self.endpoints:
                endpoint.handle_timer(self.now)
