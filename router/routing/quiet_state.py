"""Quiet paths: Pinewood's own extension, between Pinewood nodes only.

In the reference every node bootstraps every five seconds, and every entry a
bootstrap installs lives ten: at rest that refresh is most of what a node
sends, and it goes on whether anything changed or not.  Between Pinewood
nodes that also run path repair it is mostly redundant: a lost link is
reported along every path that crossed it at once
(:mod:`router.routing.repair_state`).  With quiet paths, on peerings whose
ends both announced :attr:`~router.wire.extension.Extension.QUIET_PATHS` and
path repair:

* the node where a bootstrap ends sends a *path confirmed* back on the
  peering it came in on, if the bootstrap's origin became its descending node
  (a bootstrap that ended here while we know a node between its origin and us
  has not found the origin's successor, and its origin must keep looking);
* each node on the path that holds the entry the confirmation names, reached
  over the very peering it came from, keeps that entry for
  ``quiet_entry_expiry_s`` instead of ``ENTRY_EXPIRY_S`` and passes the
  confirmation on towards the origin, if that peering takes it too; where it
  cannot go on (the peering back does not take it, or the entry is gone), a
  *path moved* goes back the way it came and undoes what it did;
* where a newer bootstrap of the same origin leaves a confirmed path (at the
  origin, or at a node whose entry it replaces, when it goes out on another
  peering, ends there or is dropped there), a *path moved* follows the old
  way, and each entry left on it lives as a reference entry would (its
  ``ENTRY_EXPIRY_S``, or ``MOVED_GRACE_S`` past the newer bootstrap, as a
  reference entry outlives its origin's next one): stale entries that lived
  long would turn frames away by their watermark;
* an origin whose last bootstrap is confirmed waits longer before the next:
  twice the reference's interval after one confirmation, four times after
  two in a row that went out the same way, and so on up to
  ``quiet_bootstrap_interval_s``, so a path that holds is refreshed ever less
  often, and one that keeps changing as often as the reference's;
* a bootstrap that goes unconfirmed (another way past a reference node,
  settling while the routes around are half built) or a new peering, which
  may open a shorter way, puts the origin back on the reference's schedule
  until its next bootstrap is confirmed.

A path that crosses a node without the extension is never confirmed: its
origin keeps the reference's schedule, and every entry on it the reference's
lifetime.  A confirmation is charged to its sender's budget, acted on once
per path, and only for a path through its sender, so a peer can only make
paths that already cross it live longer, or slow the refresh of an origin's
path whose next hop it is, which it could black-hole anyway.  Sans-I/O.
"""

from __future__ import annotations

from dataclasses import replace

from router.routing.constants import BOOTSTRAP_INTERVAL_S, ENTRY_EXPIRY_S
from router.routing.repair_state import PathRepairState
from router.routing.snek import SnakeEntry
from router.routing.state import PATH_REPAIR_BIT, QUIET_PATHS_BIT
from router.routing.tree import LOCAL_PORT
from router.wire.extension import PathConfirmed, PathMoved, encode_path_word
from router.wire.keys import PublicKey

QUIET = QUIET_PATHS_BIT | PATH_REPAIR_BIT
"""A confirmation crosses only peerings with both: the long lifetime is safe
only where a break is reported at once."""


MOVED_GRACE_S = ENTRY_EXPIRY_S - BOOTSTRAP_INTERVAL_S
"""How long an entry of a path that moved lives on: in the reference, an entry
outlives its origin's next bootstrap by this much."""


class QuietPathState(PathRepairState):
    """The snake with path confirmations: the end confirms, the path keeps its
    entries longer, and the origin bootstraps less often."""

    def _takes_confirmations(self, port: int) -> bool:
        return self.peer_extensions.get(port, 0) & QUIET == QUIET

    def _bootstrap_ended_here(self, port: int, entry: SnakeEntry, now: float) -> None:
        if not self._takes_confirmations(port):
            return
        desc = self.descending
        if desc is None or desc.key != entry.key or desc.sequence != entry.sequence:
            # It ended here, but we know a node between its origin and us: the
            # origin has not found its successor yet and must keep looking.
            self.stats["bootstraps ended here, not confirmed"] += 1
            return
        self._confirm(entry)
        self.stats["path confirmations sent"] += 1
        self.send(port, encode_path_word(PathConfirmed(entry.key, entry.sequence)), now)

    def _confirm(self, entry: SnakeEntry) -> None:
        self._set_lifetime(entry, self.config.quiet_entry_expiry_s)

    def _set_lifetime(self, entry: SnakeEntry, lifetime: float) -> None:
        changed = replace(entry, lifetime=lifetime)
        self.routes[entry.key] = changed
        desc = self.descending
        if desc is not None and desc.key == entry.key and desc.sequence == entry.sequence:
            # The same entry, living longer or shorter: not a change of descending node.
            self.descending = changed

    def _take_path_confirmed(self, port: int, message: PathConfirmed, data: bytes, now: float) -> None:
        """A confirmation from a peering that negotiated quiet paths."""
        if not self._afford(port, "path confirmation", now):
            return
        if not self._takes_confirmations(port):
            self.drops["path confirmation: the peering has no path repair"] += 1
            return
        self.stats["path confirmations received"] += 1
        if message.origin == self.key:
            if port != self._last_bootstrap_port or message.sequence != self._last_bootstrap_sequence:
                self.drops["path confirmation: not our last bootstrap"] += 1
                if message.sequence < self._last_bootstrap_sequence and port != self._last_bootstrap_port:
                    # An older path, confirmed beyond us after we moved on.
                    self._send_moved(port, message.origin, message.sequence, now)
            else:
                same_way = port == self._confirmed_port
                self._quiet_level = self._quiet_level + 1 if same_way else 1
                self._confirmed_port = port
                self._confirmed_sequence = message.sequence
            return
        entry = self.routes.get(message.origin)
        # Where a confirmation stops short of its origin, the nodes beyond us
        # kept their entries long for an origin that will not go quiet: the
        # word goes back to them (a path moved), so that theirs live no longer
        # than the reference's.  Not where a newer bootstrap of the origin went
        # the same way: it replaces them itself.
        if entry is None or entry.sequence != message.sequence:
            self.drops["path confirmation: no such path"] += 1
            if entry is None or entry.destination != port:
                self._send_moved(port, message.origin, message.sequence, now)
        elif entry.destination != port:
            self.drops["path confirmation: not from the path"] += 1
        elif entry.lifetime == self.config.quiet_entry_expiry_s:
            self.drops["path confirmation: confirmed before"] += 1
        elif entry.source == LOCAL_PORT or not self._takes_confirmations(entry.source):
            # The origin will not hear of it, and stays on the reference's
            # schedule: so does this entry, and so must those beyond us.
            self.stats["path confirmations stopped"] += 1
            self._send_moved(port, message.origin, message.sequence, now)
        else:
            self._confirm(entry)
            self.stats["path confirmations passed on"] += 1
            self.send(entry.source, data, now)

    # ------------------------------------------------------------ paths that moved

    def _route_replaced(self, old: SnakeEntry, onward: int | None, now: float) -> None:
        # Where the newer bootstrap went on the old way, it replaces the old
        # entries itself; where it went elsewhere, ended or was dropped, they
        # are left behind.
        if old.lifetime == self.config.quiet_entry_expiry_s and old.destination != onward:
            self._send_moved(old.destination, old.key, old.sequence, now)

    def _bootstrap_replaced(self, port: int | None, sequence: int, now: float) -> None:
        confirmed = sequence >= 0 and sequence == self._confirmed_sequence
        if not confirmed:
            self._confirmed_port = None  # the run of confirmations is broken
        elif port != self._last_bootstrap_port:
            self._send_moved(port, self.key, sequence, now)

    def _send_moved(self, port: int | None, origin: bytes, sequence: int, now: float) -> None:
        if (
            port is None
            or port == LOCAL_PORT
            or port not in self.peers
            or not self._takes_confirmations(port)
        ):
            return
        self.stats["path moved sent"] += 1
        self.send(port, encode_path_word(PathMoved(PublicKey(origin), sequence)), now)

    def _take_path_moved(self, port: int, message: PathMoved, data: bytes, now: float) -> None:
        """A confirmed path through us was left for another, or its confirmation
        undone: our entry of it lives no longer than a reference entry would,
        and the word goes on towards the end."""
        if not self._afford(port, "path moved", now):
            return
        if not self._takes_confirmations(port):
            self.drops["path moved: the peering has no path repair"] += 1
            return
        entry = self.routes.get(message.origin)
        if entry is None or entry.sequence != message.sequence:
            self.drops["path moved: no such path"] += 1
            return
        if entry.source != port:
            self.drops["path moved: not from the path"] += 1
            return
        # Not removed at once: frames on their way along it still arrive, and
        # the end keeps its descending node until it is replaced.  It lives as
        # a reference entry would: its full lifetime, or as long as one
        # outlives its origin's next bootstrap, whichever is later.
        lifetime = min(entry.lifetime, max(ENTRY_EXPIRY_S, now - entry.last_seen + MOVED_GRACE_S))
        if lifetime < entry.lifetime:
            self._set_lifetime(entry, lifetime)
            self._changed()  # decisions cached on it were valid for longer
            self.stats["path moved: entries shortened"] += 1
        onwards = entry.destination
        if onwards is not None and onwards != LOCAL_PORT and self._takes_confirmations(onwards):
            self.send(onwards, data, now)
