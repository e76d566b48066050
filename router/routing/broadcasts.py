"""The wakeup-broadcast filter: which sources' broadcasts were seen, and when.

The rules are the reference's (``state_broadcast.go``): a broadcast is dropped if
its source's last one was accepted less than ``filter_s`` ago or if its sequence
is not above the last accepted one; a source is forgotten ``expiry_s`` after its
last accepted broadcast.  Every node within the broadcast horizon has an entry,
so in a large, well-connected network this table has an entry for nearly every
node, and its size per entry decides a router's memory.

An entry is 16 bytes in two sorted arrays, not a dictionary of objects (about
200 bytes an entry):

* the source, as a 64-bit keyed hash of its key (Python's per-process keyed
  ``hash``, so nobody can make a key whose entry collides with another's on
  purpose; a chance collision among the at most 65,536 entries has odds of
  about one in 10**10, and would only make two sources share a filter entry);
* its sequence, saturating at 2**48 - 1 (a millisecond clock reaches that in the
  year 10889), and when it was accepted, in quarter seconds modulo 2**16.  Ages
  are reckoned modulo 2**16 quarter seconds (about 4.5 hours), which is right as
  long as :meth:`sweep` runs more often than that; the core runs it every minute.
"""

from __future__ import annotations

import zlib
from array import array
from bisect import bisect_left

TICKS_PER_S = 4
_TIME_BITS = 16
_TIME_MASK = (1 << _TIME_BITS) - 1
SEQUENCE_MAX = (1 << 48) - 1
_HASH_MASK = (1 << 64) - 1


class SeenBroadcasts:
    """Sources of accepted broadcasts, bounded to ``capacity`` entries."""

    __slots__ = ("_entries", "_expiry_ticks", "_filter_ticks", "_origin", "_sources", "capacity")

    def __init__(self, now: float, *, filter_s: float, expiry_s: float, capacity: int) -> None:
        if not 0 < filter_s <= expiry_s < (_TIME_MASK // 2) / TICKS_PER_S:
            raise ValueError("broadcast filter times out of range")
        self._sources = array("Q")  # sorted
        self._entries = array("Q")  # sequence << 16 | accepted-at ticks, parallel to _sources
        self._origin = now
        self._filter_ticks = round(filter_s * TICKS_PER_S)
        self._expiry_ticks = round(expiry_s * TICKS_PER_S)
        self.capacity = capacity

    def __len__(self) -> int:
        return len(self._sources)

    def clear(self) -> None:
        del self._sources[:]
        del self._entries[:]

    def _ticks(self, now: float) -> int:
        return int((now - self._origin) * TICKS_PER_S) & _TIME_MASK

    @staticmethod
    def _source(key: bytes) -> int:
        return hash(key) & _HASH_MASK

    def _find(self, source: int) -> int:
        """The index of ``source``, or -1 - where it would go."""
        sources = self._sources
        i = bisect_left(sources, source)
        return i if i < len(sources) and sources[i] == source else -1 - i

    def is_duplicate(self, key: bytes, sequence: int, now: float) -> bool:
        """Whether a broadcast from ``key`` with ``sequence`` is to be dropped now."""
        i = self._find(self._source(key))
        if i < 0:
            return False
        entry = self._entries[i]
        age = (self._ticks(now) - (entry & _TIME_MASK)) & _TIME_MASK
        return age < self._filter_ticks or min(sequence, SEQUENCE_MAX) <= entry >> _TIME_BITS

    def accept(self, key: bytes, sequence: int, now: float) -> None:
        """Remember that a broadcast from ``key`` with ``sequence`` was accepted now."""
        source = self._source(key)
        entry = min(sequence, SEQUENCE_MAX) << _TIME_BITS | self._ticks(now)
        i = self._find(source)
        if i >= 0:
            self._entries[i] = entry
            return
        if len(self._sources) >= self.capacity:
            self._make_room(now)
            i = self._find(source)
        self._sources.insert(-1 - i, source)
        self._entries.insert(-1 - i, entry)

    def sweep(self, now: float) -> None:
        """Forget sources whose last broadcast was accepted ``expiry_s`` ago or more."""
        self._keep_younger_than(self._expiry_ticks, now)

    def _make_room(self, now: float) -> None:
        """At capacity: forget the expired, then if need be the oldest eighth (one
        sort for every ``capacity / 8`` new sources, not a scan for each)."""
        self.sweep(now)
        if len(self._sources) < self.capacity:
            return
        current = self._ticks(now)
        entries = self._entries
        ages = [(current - (e & _TIME_MASK)) & _TIME_MASK for e in entries]
        oldest_first = sorted(range(len(entries)), key=ages.__getitem__, reverse=True)
        dropped = set(oldest_first[: max(1, self.capacity // 8)])
        self._keep([i for i in range(len(entries)) if i not in dropped])

    def _keep_younger_than(self, ticks: int, now: float) -> None:
        current = self._ticks(now)
        entries = self._entries
        keep = [i for i, e in enumerate(entries) if (current - (e & _TIME_MASK)) & _TIME_MASK < ticks]
        if len(keep) != len(entries):
            self._keep(keep)

    def _keep(self, indices: list[int]) -> None:
        sources, entries = self._sources, self._entries
        self._sources = array("Q", [sources[i] for i in indices])
        self._entries = array("Q", [entries[i] for i in indices])


class HeldBroadcast:
    """Another node's broadcast, accepted here and held a moment before it is
    flooded on; ``heard`` are the neighbour keys that sent us the same one
    meanwhile, which need no copy from us.  Mutable (``heard`` grows), so a
    plain class with slots."""

    __slots__ = ("data", "due", "from_port", "heard", "tree_only")

    def __init__(self, due: float, from_port: int, data: bytes, tree_only: bool, heard: set[bytes]) -> None:
        self.due = due
        self.from_port = from_port
        self.data = data
        self.tree_only = tree_only
        self.heard = heard


def hold_fraction(key: bytes, source: bytes, sequence: int) -> float:
    """The part of the hold time, from 1/2 to 1, after which the node ``key``
    floods on ``source``'s broadcast ``sequence``: fixed by the three (the
    simulator stays reproducible) and different from node to node, so that
    two neighbours that heard a broadcast at the same moment do not flood it
    on at the same moment, each before the other's copy could arrive."""
    mixed = zlib.crc32(key[:8] + source[:8] + (sequence & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big"))
    return 0.5 + (mixed & 0xFFFF) / 0x20000
