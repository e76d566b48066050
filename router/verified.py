"""Verify each root announcement's signatures once.

Announcements arriving from different peers share prefixes (the path from the
root down to where they diverge), and the same announcement is re-sent on every
root change.  :class:`VerifiedAnnouncements` remembers, in a bounded LRU, the
byte prefixes (at hop boundaries) whose signatures have been checked, so a new
announcement costs only the signatures of the hops past its longest known
prefix.  Matching is on the bytes, never on signatures alone: a prefix counts
as verified only if its BLAKE2b digest (128 bits, computed incrementally in
one pass) is that of one that was.  The LRU is a plain dictionary (insertion
ordered; a hit moves its entry to the end), half the size of an ``OrderedDict``.
"""

from __future__ import annotations

import hashlib

from router.wire.announcement import RootAnnouncement

DEFAULT_CAPACITY = 4096


class VerifiedAnnouncements:
    """A bounded memory of verified announcement prefixes."""

    __slots__ = ("_capacity", "_prefixes", "signatures_checked", "signatures_skipped")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._prefixes: dict[bytes, None] = {}
        self.signatures_checked = 0
        self.signatures_skipped = 0

    def verify(self, announcement: RootAnnouncement) -> None:
        """Raise :class:`~router.wire.SignatureError` unless every hop verifies."""
        hops = announcement.hops
        raw = announcement.raw
        count = len(hops)
        # digests[k - 1] covers the prefix holding hops[:k], which ends where
        # hop k starts (or at the end of the announcement).
        ends = [h.signed_length for h in hops[1:]] + [len(raw)]
        digests: list[bytes] = []
        running = hashlib.blake2b(digest_size=16)
        position = 0
        for end in ends:
            running.update(raw[position:end])
            position = end
            digests.append(running.copy().digest())
        start = 0
        for k in range(count, 0, -1):
            digest = digests[k - 1]
            if digest in self._prefixes:
                del self._prefixes[digest]
                self._prefixes[digest] = None
                start = k
                break
        announcement.verify_hops(start)
        self.signatures_checked += count - start
        self.signatures_skipped += start
        for k in range(start + 1, count + 1):
            self._remember(digests[k - 1])

    def _remember(self, digest: bytes) -> None:
        prefixes = self._prefixes
        prefixes.pop(digest, None)
        prefixes[digest] = None
        while len(prefixes) > self._capacity:
            del prefixes[next(iter(prefixes))]

    def __len__(self) -> int:
        return len(self._prefixes)
