"""A budget per peer for the expensive work its frames ask of us.

Signature checks are what a peer's frames cost a node most: every bootstrap
and wakeup broadcast carries one, a tree announcement one per hop (only those
not verified before are checked, and charged).  Each peer gets a token
bucket; each check takes a token, tokens come back at a steady rate up to a
burst, and a frame that finds the bucket empty is dropped and counted before
its signature is looked at.  The sizes leave a wide margin over what the
busiest link of large simulated networks carries (``python -m
bench.sim.peer_rates``, cold starts, all nodes at once): on ``yggdrasil.txt``
(2,478 nodes, 70 s) at most 1,527 signed frames in one second (the network-wide
round of wakeup broadcasts) and 1,534 in ten; on ``ba:10000:2`` (30 s) at most
293 in one second and 1,576 in ten (bootstraps).  So honest peers never reach
them, and a flooding peer costs at most 1,600 checks a second (about 9% of a
core at 54 us each) instead of all of it.

Sans-I/O: every call takes ``now``.
"""

from __future__ import annotations

SIGNATURE_CHECKS_PER_S = 1600.0
"""Sustained signature checks a second that one peer may ask for: ten times the
busiest honest link's rate over ten seconds (1,576 frames)."""
SIGNATURE_CHECKS_BURST = 8000.0
"""And at once, after a quiet spell: five times the busiest honest second (1,527)."""


class TokenBucket:
    """Tokens that come back at ``rate`` a second, up to ``burst``; one per piece of work."""

    __slots__ = ("at", "burst", "rate", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.at = rate, burst, burst, now

    def holds(self, now: float, count: int = 1) -> bool:
        """Whether ``count`` tokens are there (none taken)."""
        self._refill(now)
        return self.tokens >= count

    def take(self, now: float, count: int = 1) -> bool:
        """Take ``count`` tokens if there are that many."""
        self._refill(now)
        if self.tokens < count:
            return False
        self.tokens -= count
        return True

    def _refill(self, now: float) -> None:
        if now > self.at:
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
