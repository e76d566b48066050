"""Verify each root announcement's signatures once.

Announcements arriving from different peers share prefixes (the path from the
root down to where they diverge), and the same announcement is re-sent on every
root change.  :class:`VerifiedAnnouncements` remembers, in a bounded LRU, the
byte prefixes (at hop boundaries) whose signatures have been checked, so a new
announcement costs only the signatures of the hops past its longest known
prefix.  Matching is on the bytes, never on signatures alone: a prefix counts
as verified only if its BLAKE2b digest (128 bits, computed incrementally in
one pass) is that of one that was.

Prefixes are kept per root and sequence.  A root re-announces itself with a new
sequence every 30 minutes, and every announcement then carries new bytes, so
when a root's announcement with a newer sequence is verified, the prefixes of
its older sequences are forgotten: without that, the memory would fill to its
bound over a few hours with prefixes nobody sends any more.  Within the bound,
the least recently used are forgotten first (plain dictionaries, insertion
ordered: a hit moves its entry to the end).
"""

from __future__ import annotations

from collections.abc import Callable

from router.wire.announcement import RootAnnouncement

# hashlib's own BLAKE2b, without hashlib: importing hashlib sets up OpenSSL's
# digests, 0.6 MiB resident in every node, none of which the router uses.
try:
    from _blake2 import blake2b
except ImportError:  # an interpreter built without its own BLAKE2
    from hashlib import blake2b

DEFAULT_CAPACITY = 4096


class VerifiedAnnouncements:
    """A bounded memory of verified announcement prefixes."""

    __slots__ = ("_capacity", "_count", "_latest", "_roots", "signatures_checked", "signatures_skipped")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._roots: dict[tuple[bytes, int], dict[bytes, None]] = {}
        """Prefix digests by (root key, root sequence), least recently used first."""
        self._latest: dict[bytes, int] = {}
        """The newest sequence verified for each root key held."""
        self._count = 0
        self.signatures_checked = 0
        self.signatures_skipped = 0

    def verify(
        self,
        announcement: RootAnnouncement,
        afford: Callable[[int], bool] | None = None,
        remember: bool = True,
    ) -> bool:
        """Raise :class:`~router.wire.SignatureError` unless every hop verifies.

        ``afford`` is asked first whether the signatures still to check (those past
        the longest known prefix) may be checked now; if not, nothing is checked
        and the result is False.  Without ``remember`` nothing new is remembered: for
        an announcement seen once, whose prefixes would take the room of the tree's."""
        hops = announcement.hops
        raw = announcement.raw
        count = len(hops)
        # digests[k - 1] covers the prefix holding hops[:k], which ends where
        # hop k starts (or at the end of the announcement).
        ends = [h.signed_length for h in hops[1:]] + [len(raw)]
        digests: list[bytes] = []
        running = blake2b(digest_size=16)
        position = 0
        for end in ends:
            running.update(raw[position:end])
            position = end
            digests.append(running.copy().digest())
        root = (announcement.root_key, announcement.root_sequence)
        prefixes = self._roots.pop(root, None)
        start = 0
        if prefixes is not None:
            self._roots[root] = prefixes  # most recently used root last
            for k in range(count, 0, -1):
                digest = digests[k - 1]
                if digest in prefixes:
                    del prefixes[digest]
                    prefixes[digest] = None
                    start = k
                    break
        if afford is not None and start < count and not afford(count - start):
            return False
        announcement.verify_hops(start)
        self.signatures_checked += count - start
        self.signatures_skipped += start
        if remember and start < count:
            self._remember(root, digests[start:])
        return True

    def _remember(self, root: tuple[bytes, int], digests: list[bytes]) -> None:
        key, sequence = root
        latest = self._latest.get(key)
        if latest is not None and sequence < latest:
            return  # superseded already: not worth keeping
        if latest is None or sequence > latest:
            self._latest[key] = sequence
            for old in [r for r in self._roots if r[0] == key]:
                self._count -= len(self._roots.pop(old))
        prefixes = self._roots.setdefault(root, {})  # already last if it was there
        for digest in digests:
            if digest not in prefixes:
                self._count += 1
            else:
                del prefixes[digest]
            prefixes[digest] = None
        while self._count > self._capacity:
            oldest_root = next(iter(self._roots))
            oldest = self._roots[oldest_root]
            del oldest[next(iter(oldest))]
            self._count -= 1
            if not oldest:
                del self._roots[oldest_root]
                if self._latest.get(oldest_root[0]) == oldest_root[1]:
                    del self._latest[oldest_root[0]]

    def keep_only(self, roots: set[tuple[bytes, int]]) -> int:
        """Forget the prefixes of every root and sequence not in ``roots`` (the ones
        this node and its peers still announce); return how many were forgotten.
        After a cold start or a change of root, the weaker roots' prefixes would
        otherwise stay until the bound pushed them out: nobody sends them again."""
        gone = [root for root in self._roots if root not in roots]
        forgotten = 0
        for root in gone:
            forgotten += len(self._roots.pop(root))
            if self._latest.get(root[0]) == root[1]:
                del self._latest[root[0]]
        self._count -= forgotten
        return forgotten

    def __len__(self) -> int:
        return self._count
