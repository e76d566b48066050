"""Path repair: Pinewood's own extension, between Pinewood nodes only.

In the reference a bootstrap path that breaks stays broken until its origin's
next periodic bootstrap (up to five seconds): nothing on the wire tells the
nodes along it.  Frames routed by key into the break meanwhile are lost, and
under churn that is most of what is lost.  With path repair, on peerings whose
ends both announced :attr:`~router.wire.extension.Extension.PATH_REPAIR`:

* a node that loses a link sends a path notice along every bootstrap path that
  crossed it, both ways: *towards the origin* on the entry's source, and
  *towards the end* on the entry's destination;
* a notice towards the origin is passed on, hop by hop, to the origin, which
  bootstraps again at once (at most every ``REPAIR_MIN_INTERVAL_S``) and then
  settles for ``REPAIR_SETTLE_S``;
* a notice towards the end removes each entry of the path after the break (they
  lead nowhere now) and is passed on;
* a node that takes a closer descending node tells the one it displaced, along
  that one's path, so that it bootstraps again and finds its new successor.

A notice is acted on only when it names a route entry this node holds, with
the same bootstrap sequence, whose next hop in the notice's direction is the
very peer it came from; each is passed on at most once per path; a peer's
notices are charged to its budget (:mod:`router.routing.budget`).  So a peer can
touch only paths that already cross it, which it could black-hole anyway, and
a notice costs at most one frame per hop of an existing path.  A notice stops
at the first hop whose next peering does not use the extension: the rest of
that path behaves as in the reference.  Sans-I/O.
"""

from __future__ import annotations

from router.routing.constants import (
    REPAIR_MIN_INTERVAL_S,
    REPAIR_SETTLE_S,
)
from router.routing.snake_state import SnakeState
from router.routing.snek import SnakeEntry
from router.routing.state import PATH_REPAIR_BIT
from router.routing.tree import LOCAL_PORT
from router.wire.extension import Direction, PathNotice, encode_path_notice


class PathRepairState(SnakeState):
    """The snake with path repair: notices out, notices in, and the origin's repair."""

    def _uses(self, port: int | None, extension: int) -> bool:
        return port is not None and bool(self.peer_extensions.get(port, 0) & extension)

    # ------------------------------------------------------------ a link is lost

    def _notices_for_lost_link(self, port: int) -> list[tuple[int, bytes]]:
        """The notices to send because the link on ``port`` is going, worked out
        while its route entries are still there: (port, frame) pairs."""
        if not self.uses_path_repair:
            return []
        notices = []
        for entry in self.routes.ordered:
            if entry.destination == port and entry.source != port:
                if self._uses(entry.source, PATH_REPAIR_BIT):
                    notice = PathNotice(Direction.TOWARDS_ORIGIN, entry.key, entry.sequence)
                    notices.append((entry.source, encode_path_notice(notice)))
            elif entry.source == port and (onwards := self._onwards(entry, port)) is not None:
                notice = PathNotice(Direction.TOWARDS_END, entry.key, entry.sequence)
                notices.append((onwards, encode_path_notice(notice)))
        return notices

    def _link_lost(self, port: int, notices: list[tuple[int, bytes]], now: float) -> None:
        """After the peer on ``port`` is forgotten: send what
        :meth:`_notices_for_lost_link` found, and repair our own path if our last
        bootstrap left on that link."""
        for to, frame in notices:
            if to in self.peers:
                self.stats["path notices sent"] += 1
                self.send(to, frame, now)
        if self.uses_path_repair and port == self._last_bootstrap_port and port not in self.peers:
            self._last_bootstrap_port = None
            self._repair(now)

    def _descending_displaced(self, old: SnakeEntry, now: float) -> None:
        if not self._uses(old.source, PATH_REPAIR_BIT):
            return
        current = self.routes.get(old.key)
        if current is None or current.sequence != old.sequence:
            return
        self.stats["path notices sent"] += 1
        notice = PathNotice(Direction.TOWARDS_ORIGIN, old.key, old.sequence)
        self.send(old.source, encode_path_notice(notice), now)

    # ------------------------------------------------------------ a notice comes in

    def _take_path_notice(self, port: int, notice: PathNotice, data: bytes, now: float) -> None:
        """A path notice from a peering that negotiated path repair, within its budget."""
        # Charged to the peer's budget for costly work, as a signature check is: a
        # notice costs far less, but a flood of them must not cost without end.
        if not self._afford(port, "path notice", now):
            return
        self.stats["path notices received"] += 1
        self._handle_path_notice(port, notice, data, now)

    def _handle_path_notice(self, port: int, notice: PathNotice, data: bytes, now: float) -> None:
        if notice.origin == self.key:
            if notice.direction != Direction.TOWARDS_ORIGIN:
                self.drops["path notice: towards the end, for our own path"] += 1
            elif port != self._last_bootstrap_port or notice.sequence != self._last_bootstrap_sequence:
                self.drops["path notice: not our last bootstrap"] += 1
            else:
                self._repair(now)
            return
        entry = self.routes.get(notice.origin)
        if entry is None or entry.sequence != notice.sequence:
            self.drops["path notice: no such path"] += 1
            return
        if notice.direction == Direction.TOWARDS_ORIGIN:
            if entry.destination != port:
                self.drops["path notice: not from the path"] += 1
            elif self._notices_passed.get(notice.origin) == notice.sequence:
                self.drops["path notice: passed on before"] += 1
            else:
                # Only for entries we hold: pruned with them on the snake tick.
                self._notices_passed[notice.origin] = notice.sequence
                if self._uses(entry.source, PATH_REPAIR_BIT):
                    self.stats["path notices passed on"] += 1
                    self.send(entry.source, data, now)
            return
        if entry.source != port:
            self.drops["path notice: not from the path"] += 1
            return
        del self.routes[notice.origin]
        self._changed()
        if self.descending is not None and self.descending.key == notice.origin:
            self._set_descending(None, now)
        onwards = self._onwards(entry, port)
        if onwards is not None:
            self.stats["path notices passed on"] += 1
            self.send(onwards, data, now)

    def _onwards(self, entry: SnakeEntry, port: int) -> int | None:
        """The port ``entry``'s path goes on to past us, if the peer there takes
        notices (it did not come in on ``port``)."""
        destination = entry.destination
        if destination is None or destination in (LOCAL_PORT, port):
            return None
        return destination if self._uses(destination, PATH_REPAIR_BIT) else None

    # ------------------------------------------------------------ the origin

    def _repair(self, now: float) -> None:
        """Our bootstrap path broke: bootstrap again at once, then settle."""
        if self.parent is None:
            return  # the root sends no bootstraps
        self._settling_until = max(self._settling_until, now + REPAIR_SETTLE_S)
        if now - self._last_repair < REPAIR_MIN_INTERVAL_S:
            # Recently repaired: the next maintenance tick bootstraps.
            self._last_bootstrap = min(self._last_bootstrap, now - self.config.bootstrap_interval_s)
            self.drops["path repair: deferred to the next tick"] += 1
            return
        self._last_repair = now
        self.stats["path repairs"] += 1
        self._bootstrap_now(now)
