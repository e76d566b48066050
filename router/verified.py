"""Verify each root announcement's signatures once.

Announcements arriving from different peers share prefixes (the path from the
root down to where they diverge), and the same announcement is re-sent on every
root change.  :class:`VerifiedAnnouncements` remembers, in a bounded LRU, the
exact byte prefixes (at hop boundaries) whose signatures have been checked, so a
new announcement costs only the signatures of the hops past its longest known
prefix.  Matching is on bytes, never on signatures alone: a prefix counts as
verified only if it is byte-for-byte one that was.
"""

from __future__ import annotations

from collections import OrderedDict

from router.wire.announcement import RootAnnouncement

DEFAULT_CAPACITY = 4096


class VerifiedAnnouncements:
    """A bounded memory of verified announcement prefixes."""

    __slots__ = ("_capacity", "_prefixes", "signatures_checked", "signatures_skipped")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._prefixes: OrderedDict[bytes, None] = OrderedDict()
        self.signatures_checked = 0
        self.signatures_skipped = 0

    def verify(self, announcement: RootAnnouncement) -> None:
        """Raise :class:`~router.wire.SignatureError` unless every hop verifies."""
        hops = announcement.hops
        raw = announcement.raw
        count = len(hops)
        # The prefix holding hops[:k] ends where hop k starts (or at the end).
        ends = [h.signed_length for h in hops[1:]] + [len(raw)]
        start = 0
        for k in range(count, 0, -1):
            prefix = raw[: ends[k - 1]]
            if prefix in self._prefixes:
                self._prefixes.move_to_end(prefix)
                start = k
                break
        announcement.verify_hops(start)
        self.signatures_checked += count - start
        self.signatures_skipped += start
        for k in range(start + 1, count + 1):
            self._remember(raw[: ends[k - 1]])

    def _remember(self, prefix: bytes) -> None:
        self._prefixes[prefix] = None
        self._prefixes.move_to_end(prefix)
        while len(self._prefixes) > self._capacity:
            self._prefixes.popitem(last=False)

    def __len__(self) -> int:
        return len(self._prefixes)
