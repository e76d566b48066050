"""Who is held off, and until when: peers that sent a forged frame.

A frame whose signature fails can only come from a hostile peer (every honest
node verifies bootstraps, announcements and wakeup broadcasts before it
installs or forwards them), so the node closes that peering and refuses the
peer's key, and new connections from its address, for a while.  Each new
strike doubles the wait, from :data:`HOLD_OFF_FIRST_S` up to
:data:`HOLD_OFF_MAX_S`; a name with no strike for :data:`FORGET_AFTER_S` starts
over.  The table is bounded: when full, the entry whose hold ends first goes.

Sans-I/O: every call takes ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass

HOLD_OFF_FIRST_S = 30.0
HOLD_OFF_MAX_S = 3600.0
FORGET_AFTER_S = 24 * 3600.0
MAX_HELD = 4096


@dataclass(slots=True)
class _Strikes:
    until: float
    count: int
    last: float


class HoldOffs:
    """Names (keys, addresses) held off after strikes, with a growing wait."""

    def __init__(self, capacity: int = MAX_HELD) -> None:
        self.capacity = capacity
        self._entries: dict[str, _Strikes] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def strike(self, name: str, now: float) -> float:
        """Record a strike against ``name``; the seconds it is now held off."""
        entry = self._entries.get(name)
        count = 1 if entry is None or now - entry.last > FORGET_AFTER_S else entry.count + 1
        hold: float = min(HOLD_OFF_FIRST_S * 2.0 ** min(count - 1, 32), HOLD_OFF_MAX_S)
        if entry is None and len(self._entries) >= self.capacity:
            del self._entries[min(self._entries, key=lambda n: self._entries[n].until)]
        self._entries[name] = _Strikes(now + hold, count, now)
        return hold

    def remaining(self, name: str, now: float) -> float:
        """Seconds ``name`` is still held off; 0 if it is not."""
        entry = self._entries.get(name)
        return max(0.0, entry.until - now) if entry is not None else 0.0

    def sweep(self, now: float) -> None:
        """Forget names whose strikes are old enough to start over."""
        for name in [n for n, e in self._entries.items() if now - e.last > FORGET_AFTER_S]:
            del self._entries[name]
