"""The routing core: one node's spanning tree, virtual snake and forwarding, sans-I/O.

A :class:`RouterCore` owns every piece of routing state of one node and does no
I/O.  Its runtime tells it about peers (:meth:`add_peer`, :meth:`remove_peer`),
hands it frames (:meth:`handle_frame`) and fires its timer (:meth:`handle_timer`
at :meth:`next_deadline`); every call takes ``now`` (seconds on a monotonic
clock) and returns the list of :mod:`router.routing.outputs` to carry out.  Many cores
live in one process: nothing here is global.

The behaviour follows the reference implementation (``router/state*.go`` of
matrix-org/pinecone); the decisions themselves are the pure functions of
:mod:`router.routing.tree` and :mod:`router.routing.snek`; the state they work on is
:mod:`router.routing.state`, handled in parts (tree, snake, broadcasts, traffic).
"""

from __future__ import annotations

import math

from router.routing.broadcast_state import BroadcastState
from router.routing.budget import TokenBucket
from router.routing.constants import (
    COORDS_CACHE_LIFETIME_S,
    KEEPALIVE_INTERVAL_S,
    MAINTAIN_INTERVAL_S,
    PEER_TICK_S,
    PEER_TIMEOUT_S,
    WAKEUP_INTERVAL_S,
)
from router.routing.lookahead_state import LookaheadState
from router.routing.outputs import (
    CloseCause,
    ClosePeer,
    DescendingChanged,
    Output,
    ParentChanged,
    RootChanged,
    SendFrame,
)
from router.routing.quiet_state import QuietPathState
from router.routing.state import LOOKAHEAD_BIT, PATH_REPAIR_BIT, QUIET_PATHS_BIT, CoreConfig, PeerInfo
from router.routing.traffic import TrafficPath
from router.routing.tree_state import TreeState
from router.wire.errors import DecodeError, SignatureError
from router.wire.extension import (
    ExtensionKind,
    Neighbours,
    PathConfirmed,
    PathMoved,
    PathNotice,
    decode_extension,
    is_extension_frame,
)
from router.wire.fastpath import is_traffic_frame
from router.wire.frames import (
    BootstrapFrame,
    FrameType,
    Keepalive,
    TreeAnnouncementFrame,
    WakeupBroadcastFrame,
    decode_frame,
    encode_frame,
)
from router.wire.keys import Identity, PublicKey

__all__ = ["KEEPALIVE_FRAME", "CoreConfig", "RouterCore"]

KEEPALIVE_FRAME = encode_frame(Keepalive())
EXTENSION_OF_KIND: dict[int, int] = {
    ExtensionKind.PATH_NOTICE: PATH_REPAIR_BIT,
    ExtensionKind.NEIGHBOURS: LOOKAHEAD_BIT,
    ExtensionKind.NEIGHBOURS_GONE: LOOKAHEAD_BIT,
    ExtensionKind.PATH_CONFIRMED: QUIET_PATHS_BIT,
    ExtensionKind.PATH_MOVED: QUIET_PATHS_BIT,
}
"""The extension a peering must have negotiated for each kind of extension frame."""


class RouterCore(TreeState, QuietPathState, LookaheadState, BroadcastState):
    """One node's routing state machine."""

    def __init__(self, identity: Identity, now: float, config: CoreConfig | None = None) -> None:
        super().__init__(identity, now, config)
        self.traffic = TrafficPath(self)
        self._reset(now)
        # The first timer run happens now; its outputs wait for the first call.
        self._run_timers(now)

    def add_peer(
        self, key: bytes, link_type: int, now: float, port: int | None = None, extensions: int = 0
    ) -> tuple[int, list[Output]]:
        """Attach a peer that completed its handshake; returns its port and outputs.

        The lowest free port is used unless ``port`` is given; ``extensions`` are
        the bits the peer's handshake announced (the peering uses those this node
        announces too).  Raises ``ValueError`` if the node is full or ``port`` is taken.
        """
        self._clock = now
        if port is None:
            port = next((p for p in range(1, self.config.max_peers + 1) if p not in self.peers), 0)
            if port == 0:
                raise ValueError(f"all {self.config.max_peers} peer ports are in use")
        elif port <= 0 or port in self.peers:
            raise ValueError(f"port {port} is invalid or in use")
        self.peers[port] = PeerInfo(port, PublicKey(bytes(key)), link_type)
        self.peer_keys[port] = PublicKey(bytes(key))
        self._signers_stale = True
        self.link_types[port] = link_type
        self._last_received[port] = now
        self._peer_tick_at = min(self._peer_tick_at, now)  # its keepalives and silence from now on
        self._budgets[port] = TokenBucket(
            self.config.signature_checks_per_s, self.config.signature_checks_burst, now
        )
        if both := extensions & self.config.extensions:
            self.peer_extensions[port] = both
        # A way that may be shorter: back on the reference's schedule until the
        # next bootstrap's path is confirmed (quiet paths).
        self._confirmed_sequence = -1
        self._confirmed_port = None
        self._changed()
        self._send_announcement_to(port, self._root_announcement(), now)
        return port, self._flush()

    def remove_peer(self, port: int, now: float) -> list[Output]:
        """The link on ``port`` is gone.  Unknown ports are ignored."""
        self._clock = now
        self._disconnect(port, now)
        return self._flush()

    def _disconnect(self, port: int, now: float) -> None:
        if port not in self.peers:
            return
        notices = self._notices_for_lost_link(port)
        del self.peers[port], self.peer_keys[port], self.link_types[port]
        self._signers_stale = True
        self.peer_extensions.pop(port, None)
        self._forget_claims(port)
        self._budgets.pop(port, None)
        self._last_sent.pop(port, None)
        self._announced.pop(port, None)
        self._last_received.pop(port, None)
        self._changed()
        if not self.peers:
            self._reset(now)
            return
        self.announcements.pop(port, None)
        for key in [e.key for e in self.routes.ordered if port in (e.source, e.destination)]:
            del self.routes[key]
        if self.descending is not None and self.descending.source == port:
            self._set_descending(None, now)
        if self.parent == port and self._select_new_parent(now):
            self._bootstrap_soon(now)
        self._link_lost(port, notices, now)

    def close_peer(
        self,
        port: int,
        category: str,
        now: float,
        detail: str = "",
        cause: CloseCause = CloseCause.MALFORMED,
    ) -> None:
        """Forget the peer on ``port`` and ask the runtime to close its link.

        ``category`` is a fixed string (it keys the drop counters, which must
        not grow with what peers send); ``detail`` goes only into the event.
        """
        self.drops[f"closed: {category}"] += 1
        self._out.append(ClosePeer(port, f"{category}: {detail}" if detail else category, cause))
        self._disconnect(port, now)

    def _reset(self, now: float) -> None:
        """The reference's ``_start``: forget everything learned from peers."""
        self._set_parent(None, now)
        self._set_descending(None, now)
        self._ordering = 0
        self._waiting_until = None
        self.announcements.clear()
        self._signers_stale = True
        self.routes.clear()
        self._forget_coordinates()
        self._seen_broadcasts.clear()
        self._held_broadcasts.clear()
        self._held_until = math.inf
        self._tree_at = now
        self._snake_at = now
        self._changed()

    def forward_traffic(self, port: int, data: bytes, now: float) -> tuple[int, bytes] | None:
        """The traffic fast path: :meth:`handle_frame` for a frame the caller has
        found to be traffic (:func:`~router.wire.fastpath.is_traffic_frame`),
        returning where it goes, (port, frame), instead of an output for it, so
        that the caller writes it out with no output record.  Whatever else the
        frame causes (a delivery, a closed peer) is an output as usual, to be
        taken with :meth:`take_outputs` when :attr:`has_outputs` says so."""
        if port not in self.peers:
            self.drops["unknown port"] += 1
            return None
        self._last_received[port] = now
        try:
            sent = self.traffic.forward_frame(port, data, now)
        except DecodeError as exc:
            self._clock = now  # (only here: forwarding itself changes no state)
            self.close_peer(port, "malformed traffic frame", now, str(exc))
            return None
        if sent is not None:
            self._last_sent[sent[0]] = now
        return sent

    @property
    def has_outputs(self) -> bool:
        return bool(self._out) or self._report_pending

    def take_outputs(self) -> list[Output]:
        """The outputs waiting since the last call that returned them."""
        return self._flush()

    def handle_frame(self, port: int, data: bytes | bytearray | memoryview, now: float) -> list[Output]:
        """Process one complete frame received on ``port``.

        Never raises for anything a peer can send: a frame that breaks the
        framing or that only the peer itself could have made wrong closes the
        peering; anything else it may merely be relaying is dropped and counted.
        """
        self._clock = now
        if type(data) is not bytes:
            data = bytes(data)
        if is_traffic_frame(data):
            sent = self.forward_traffic(port, data, now)
            if sent is not None:
                self._out.append(SendFrame(sent[0], sent[1], True))
            return self._flush()
        if port not in self.peers:
            self.drops["unknown port"] += 1
            return []
        self._last_received[port] = now
        if self._waiting_until is not None and now >= self._waiting_until:
            self._end_reparent_wait(now)
        try:
            if is_extension_frame(data):
                self._handle_extension_frame(port, data, now)
                return self._flush()
            if (
                len(data) >= 6
                and data[:4] == b"pine"
                and (data[4] != 0 or data[5] > FrameType.WAKEUP_BROADCAST)
            ):
                # The reference ignores frames of versions and types it does not know.
                self.drops["unknown frame version or type"] += 1
                return self._flush()
            frame = decode_frame(data)
            if isinstance(frame, Keepalive):
                self.stats["keepalives received"] += 1
            elif isinstance(frame, TreeAnnouncementFrame):
                self._handle_announcement(port, frame, now)
            elif isinstance(frame, BootstrapFrame):
                self._handle_bootstrap_frame(port, frame, now)
            elif isinstance(frame, WakeupBroadcastFrame):
                self._handle_broadcast(port, frame, now)
        except SignatureError as exc:
            self.close_peer(port, "bad signature", now, str(exc), CloseCause.BAD_SIGNATURE)
        except DecodeError as exc:
            self.close_peer(port, "malformed frame", now, str(exc))
        return self._flush()

    def send_traffic(
        self, destination: bytes, payload: bytes, now: float, by_key: bool = False
    ) -> list[Output]:
        """Send ``payload`` from the local application to the node with key ``destination``
        (``by_key``: by the snake alone, to whichever node is closest to that key)."""
        self._clock = now
        self.traffic.send_local(PublicKey(bytes(destination)), payload, now, by_key)
        return self._flush()

    def next_deadline(self) -> float:
        """When :meth:`handle_timer` must next be called."""
        deadline = min(self._tree_at, self._snake_at, self._peer_tick_at, self._cache_sweep_at)
        if self._claims_dirty and self.uses_lookahead:
            deadline = min(deadline, self._claims_at)
        if self.config.wakeup_broadcasts:
            deadline = min(deadline, self._broadcast_at)
        if self._waiting_until is not None:
            deadline = min(deadline, self._waiting_until)
        return min(deadline, self._held_until)

    def handle_timer(self, now: float) -> list[Output]:
        """Run every timer that is due at ``now``."""
        self._clock = now
        self._run_timers(now)
        return self._flush()

    def _run_timers(self, now: float) -> None:
        # One timer can make others due at once (a peer timing out can leave no
        # peers, and the reset re-arms the tree and snake timers to now): run
        # until nothing is due, so that ``next_deadline()`` is always after ``now``.
        for _ in range(3):
            self._run_due_timers(now)
            if self.next_deadline() > now:
                return

    def _run_due_timers(self, now: float) -> None:
        if self._waiting_until is not None and now >= self._waiting_until:
            self._end_reparent_wait(now)
        if now >= self._tree_at:
            self._maintain_tree(now)
        if now >= self._snake_at:
            self._maintain_snake(now)
            tick = MAINTAIN_INTERVAL_S
            if now < self._settling_until and self.config.settle_bootstrap_interval_s > 0:
                tick = min(tick, self.config.settle_bootstrap_interval_s)
            self._snake_at = now + tick
        claims_due = self._claims_dirty and self.uses_lookahead and now >= self._claims_at
        if now >= self._peer_tick_at or claims_due:
            self._peer_tick_at = self._maintain_peers(now)
            if self.uses_lookahead and self._claims_dirty:
                # Changes of the last half second go out together.
                self._maintain_claims(now)
                self._claims_at = now + PEER_TICK_S if self._claims_dirty else math.inf
        if now >= self._cache_sweep_at:
            self._cache_sweep_at = now + COORDS_CACHE_LIFETIME_S
            self.traffic.sweep_coords_cache(now)
            # Decisions are voided by every change of routing state; on a quiet
            # network changes are rare, and the cache would keep a decision
            # for every destination ever seen.  A minute bounds it.
            self.traffic.invalidate()
            self._forget_unused_prefixes()
            self._seen_broadcasts.sweep(now)
        if now >= self._held_until:
            self._release_broadcasts(now)
        if self.config.wakeup_broadcasts and now >= self._broadcast_at:
            self._broadcast_at = now + WAKEUP_INTERVAL_S
            self._maintain_broadcasts(now)

    def _maintain_peers(self, now: float) -> float:
        """Keepalives to peers sent nothing for a while, and peers heard nothing
        from closed; returns when the next of either can fall due.

        Frames sent and received only ever push those times later, so the node
        wakes for them, not on a fixed tick: at rest, once per keepalive rather
        than twice a second.  Wake-ups fall on a grid of ``PEER_TICK_S``, so that
        peers due at about the same time are served in one.
        """
        due = now + KEEPALIVE_INTERVAL_S
        for port in list(self.peers):
            received = self._last_received.get(port, now)
            if self.config.peer_timeouts and now - received >= PEER_TIMEOUT_S:
                self.close_peer(port, "no frames for 5 s", now, cause=CloseCause.SILENT)
                continue
            sent = self._last_sent.get(port, -1e18)
            if now - sent >= KEEPALIVE_INTERVAL_S:
                self.send(port, KEEPALIVE_FRAME, now)
                sent = now
            due = min(due, sent + KEEPALIVE_INTERVAL_S)
            if self.config.peer_timeouts:
                due = min(due, received + PEER_TIMEOUT_S)
        return math.ceil(due / PEER_TICK_S) * PEER_TICK_S

    def _flush(self) -> list[Output]:
        if not self._report_pending:
            # Nothing changed (the traffic path's common case): no events to report.
            out, self._out = self._out, []
            return out
        self._report_pending = False
        root = self._root_announcement()
        state = (
            self.parent,
            (root.root_key, root.root_sequence),
            self.descending.key if self.descending else None,
        )
        if state != self._reported:
            old_parent, old_root, old_desc = self._reported
            self._reported = state
            if state[0] != old_parent:
                self._out.append(ParentChanged(self.parent))
            if state[1] != old_root:
                self._out.append(RootChanged(root.root_key, root.root_sequence, root.coordinates))
                self._forget_unused_prefixes()
                if state[1][0] != old_root[0]:
                    # Cached coordinates were learned under the old root and lead
                    # nowhere under the new one.  (The reference clears them only
                    # when the root changes through a change of parent.)
                    self._forget_coordinates()
            if state[2] != old_desc:
                self._out.append(DescendingChanged(self.descending.key if self.descending else None))
        out, self._out = self._out, []
        return out

    def _changed(self) -> None:
        """Routing state changed: cached forwarding decisions are void."""
        self.traffic.invalidate()
        super()._changed()

    def _handle_extension_frame(self, port: int, data: bytes, now: float) -> None:
        """An extension frame from the peer on ``port``.  Raises :class:`DecodeError`
        if the peer, which announced the extension, sent it malformed."""
        bits = self.peer_extensions.get(port, 0)
        if not bits:
            # As the reference ignores a type it does not know, from any peer.
            self.drops["extension frame on a peering without extensions"] += 1
            return
        needed = EXTENSION_OF_KIND.get(data[12]) if len(data) > 12 else None
        if needed is None:
            self.drops["extension frame of an unknown kind"] += 1
            return
        if not bits & needed:
            self.drops["extension frame the peering did not negotiate"] += 1
            return
        message = decode_extension(data)
        if isinstance(message, PathNotice):
            self._take_path_notice(port, message, data, now)
        elif isinstance(message, Neighbours):
            self._handle_neighbours(port, message, now)
        elif isinstance(message, PathConfirmed):
            self._take_path_confirmed(port, message, data, now)
        elif isinstance(message, PathMoved):
            self._take_path_moved(port, message, data, now)
        else:
            self._handle_neighbours_gone(port, message)

    def _forget_unused_prefixes(self) -> None:
        """Verified prefixes of roots that neither we nor any peer announce now."""
        roots: set[tuple[bytes, int]] = {ann.root for ann in self.announcements.values()}
        roots.add(self.root())
        if self._verified.keep_only(roots):
            self.stats["verified prefixes of unused roots forgotten"] += 1

    def _forget_coordinates(self) -> None:
        self.traffic.coords_cache.clear()
