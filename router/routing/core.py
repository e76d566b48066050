"""The routing core: one node's spanning tree, virtual snake and forwarding, sans-I/O.

A :class:`RouterCore` owns every piece of routing state of one node and does no
I/O.  Its runtime tells it about peers (:meth:`add_peer`, :meth:`remove_peer`),
hands it frames (:meth:`handle_frame`) and fires its timer (:meth:`handle_timer`
at :meth:`next_deadline`); every call takes ``now`` (seconds on a monotonic
clock) and returns the list of :mod:`router.routing.outputs` to carry out.  Many cores
live in one process: nothing here is global.

The behaviour follows the reference implementation (``router/state*.go`` of
matrix-org/pinecone); the decisions themselves are the pure functions of
:mod:`router.routing.tree` and :mod:`router.routing.snek`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

from router.routing.broadcasts import SeenBroadcasts
from router.routing.budget import SIGNATURE_CHECKS_BURST, SIGNATURE_CHECKS_PER_S, TokenBucket
from router.routing.outputs import (
    BroadcastReceived,
    CloseCause,
    ClosePeer,
    DescendingChanged,
    Output,
    ParentChanged,
    RootChanged,
    SendFrame,
)
from router.routing.snek import (
    BOOTSTRAP_INTERVAL_S,
    MAINTAIN_INTERVAL_S,
    RouteTable,
    SnakeEntry,
    next_hop_snek,
)
from router.routing.traffic import TrafficPath
from router.routing.tree import (
    LOCAL_PORT,
    REPARENT_WAIT_S,
    ROOT_ANNOUNCEMENT_INTERVAL_S,
    AnnouncementAction,
    PeerAnnouncement,
    Root,
    announcement_action,
    is_better_parent,
)
from router.routing.verified import VerifiedAnnouncements
from router.wire.announcement import RootAnnouncement, decode_announcement
from router.wire.broadcast import decode_wakeup, sign_wakeup
from router.wire.coordinates import tree_distance
from router.wire.errors import DecodeError, EncodeError, SignatureError
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
from router.wire.snake import (
    FULL_WATERMARK,
    BootstrapBody,
    SignedRootStamp,
    Watermark,
    decode_bootstrap,
    sign_bootstrap,
)

KEEPALIVE_INTERVAL_S = 3.0  # reference: peerKeepaliveInterval
PEER_TIMEOUT_S = 5.0  # reference: peerKeepaliveTimeout
PEER_TICK_S = 0.5  # granularity of the keepalive and dead-peer checks
COORDS_CACHE_LIFETIME_S = 60.0  # reference: coordsCacheLifetime
WAKEUP_INTERVAL_S = 60.0  # reference: wakeupBroadcastInterval
BROADCAST_EXPIRY_S = 180.0  # reference: broadcastExpiryPeriod
BROADCAST_FILTER_S = 30.0  # reference: broadcastFilterTime
WAKEUP_HOP_LIMIT = 5  # reference: types.NetworkHorizonDistance
LINK_TYPE_MULTICAST = 1  # reference peer types: lower is preferred (pipe 0, multicast 1,
LINK_TYPE_REMOTE = 3  # Bonjour 2, remote 3, Bluetooth 4)
DEFAULT_MAX_PEERS = 253  # reference: portCount - 1 (port 0 is the node itself)
MAX_SEEN_BROADCASTS = 65536
# 12 bytes of frame header and payload length, and our hop: port (up to 10),
# key (32) and signature (64).
MAX_ACCEPTED_ANNOUNCEMENT_SIZE = 0xFFFF - 12 - 10 - 32 - 64

KEEPALIVE_FRAME = encode_frame(Keepalive())

CROSSING_WINDOW_S = 1.0
"""An announcement sent to a peer this recently is taken to be crossing its own on the link."""


SETTLE_WINDOW_S = 6.0
SETTLE_BOOTSTRAP_INTERVAL_S = 0.5
"""Not the reference's: while this node's place in the tree or the snake is changing,
it bootstraps every half second, for six seconds after the last change, rather than
every five (the snake's maintenance tick runs as often meanwhile).  A bootstrap sent
while the routes around it are half built can end at the wrong node, and the
reference only tries again five seconds later; settling sooner costs at most twelve
more bootstraps per change, and bootstraps are ordinary frames to every other node,
so Go nodes are unaffected."""


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """Behaviour switches; the defaults are the reference's behaviour, except for the
    settling bootstraps (``settle_window_s``)."""

    hop_limiting: bool = False
    wakeup_broadcasts: bool = True
    peer_timeouts: bool = True
    verify_signatures: bool = True
    sign: bool = True
    max_peers: int = DEFAULT_MAX_PEERS
    clock_offset_s: float = 0.0
    """Added to ``now`` to make sequence numbers (Unix milliseconds in the reference)."""
    bootstrap_interval_s: float = BOOTSTRAP_INTERVAL_S
    """How often the node bootstraps.  Only the simulator changes it (to study
    convergence); like ``sign`` and ``verify_signatures`` it is not a daemon setting."""
    settle_window_s: float = SETTLE_WINDOW_S
    """For this long after a change of our root, parent or descending node, bootstrap
    every ``settle_bootstrap_interval_s`` instead (0 turns it off: the reference's schedule)."""
    settle_bootstrap_interval_s: float = SETTLE_BOOTSTRAP_INTERVAL_S
    signature_checks_per_s: float = SIGNATURE_CHECKS_PER_S
    """Each peer's budget of signature checks (:mod:`router.routing.budget`)."""
    signature_checks_burst: float = SIGNATURE_CHECKS_BURST


@dataclass(frozen=True, slots=True)
class PeerInfo:
    port: int
    key: PublicKey
    link_type: int


class RouterCore:
    """One node's routing state machine."""

    def __init__(self, identity: Identity, now: float, config: CoreConfig | None = None) -> None:
        self.identity = identity
        self.key = identity.public_key
        self.config = config or CoreConfig()
        self.drops: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()
        self.peers: dict[int, PeerInfo] = {}
        self.peer_keys: dict[int, PublicKey] = {}
        self.link_types: dict[int, int] = {}
        self.announcements: dict[int, PeerAnnouncement] = {}
        self.routes = RouteTable()
        self.parent: int | None = None
        self.descending: SnakeEntry | None = None
        self.sequence = 0
        self._ordering = 0
        self._waiting_until: float | None = None
        self._last_bootstrap = now
        self._settling_until = now + self.config.settle_window_s
        self._last_sequence_ms = 0
        self._last_sent: dict[int, float] = {}
        self._announced: dict[int, tuple[RootAnnouncement, float]] = {}
        """The root announcement last sent to each peer (before our hop was added), and when."""
        self._last_received: dict[int, float] = {}
        self._budgets: dict[int, TokenBucket] = {}
        self._seen_broadcasts = SeenBroadcasts(
            now, filter_s=BROADCAST_FILTER_S, expiry_s=BROADCAST_EXPIRY_S, capacity=MAX_SEEN_BROADCASTS
        )
        self._verified = VerifiedAnnouncements()
        self._self_announcement: RootAnnouncement | None = None
        self._out: list[Output] = []
        self._report_pending = True
        self._reported: tuple[int | None, Root, bytes | None] = (None, (self.key, 0), None)
        self.traffic = TrafficPath(self)
        self._tree_at = now
        self._snake_at = now
        self._peer_tick_at = now + PEER_TICK_S
        self._cache_sweep_at = now + COORDS_CACHE_LIFETIME_S
        self._broadcast_at = now + WAKEUP_INTERVAL_S
        self._reset(now)
        # The first timer run happens now; its outputs wait for the first call.
        self._run_timers(now)

    # ------------------------------------------------------------ peers

    def add_peer(
        self, key: bytes, link_type: int, now: float, port: int | None = None
    ) -> tuple[int, list[Output]]:
        """Attach a peer that completed its handshake; returns its port and outputs.

        The lowest free port is used unless ``port`` is given.  Raises
        ``ValueError`` if the node is full or ``port`` is taken.
        """
        if port is None:
            port = next((p for p in range(1, self.config.max_peers + 1) if p not in self.peers), 0)
            if port == 0:
                raise ValueError(f"all {self.config.max_peers} peer ports are in use")
        elif port <= 0 or port in self.peers:
            raise ValueError(f"port {port} is invalid or in use")
        self.peers[port] = PeerInfo(port, PublicKey(bytes(key)), link_type)
        self.peer_keys[port] = PublicKey(bytes(key))
        self.link_types[port] = link_type
        self._last_received[port] = now
        self._budgets[port] = TokenBucket(
            self.config.signature_checks_per_s, self.config.signature_checks_burst, now
        )
        self._changed()
        self._send_announcement_to(port, self._root_announcement(), now)
        return port, self._flush()

    def remove_peer(self, port: int, now: float) -> list[Output]:
        """The link on ``port`` is gone.  Unknown ports are ignored."""
        self._disconnect(port, now)
        return self._flush()

    def _disconnect(self, port: int, now: float) -> None:
        if port not in self.peers:
            return
        del self.peers[port], self.peer_keys[port], self.link_types[port]
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
        self.routes.clear()
        self.traffic.coords_cache.clear()
        self._seen_broadcasts.clear()
        self._tree_at = now
        self._snake_at = now
        self._changed()

    # ------------------------------------------------------------ frames

    def handle_frame(self, port: int, data: bytes | bytearray | memoryview, now: float) -> list[Output]:
        """Process one complete frame received on ``port``.

        Never raises for anything a peer can send: a frame that breaks the
        framing or that only the peer itself could have made wrong closes the
        peering; anything else it may merely be relaying is dropped and counted.
        """
        if port not in self.peers:
            self.drops["unknown port"] += 1
            return []
        if type(data) is not bytes:
            data = bytes(data)
        self._last_received[port] = now
        if len(data) > 5 and data[5] == FrameType.TRAFFIC and data[4] == 0:
            self.traffic.forward(port, data, now)
            return self._flush()
        if self._waiting_until is not None and now >= self._waiting_until:
            self._end_reparent_wait(now)
        try:
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
        self.traffic.send_local(PublicKey(bytes(destination)), payload, now, by_key)
        return self._flush()

    # ------------------------------------------------------------ timers

    def next_deadline(self) -> float:
        """When :meth:`handle_timer` must next be called."""
        deadline = min(self._tree_at, self._snake_at, self._peer_tick_at, self._cache_sweep_at)
        if self.config.wakeup_broadcasts:
            deadline = min(deadline, self._broadcast_at)
        if self._waiting_until is not None:
            deadline = min(deadline, self._waiting_until)
        return deadline

    def handle_timer(self, now: float) -> list[Output]:
        """Run every timer that is due at ``now``."""
        self._run_timers(now)
        return self._flush()

    def _end_reparent_wait(self, now: float) -> None:
        self._waiting_until = None
        if self._select_new_parent(now):
            self._bootstrap_soon(now)

    def _run_timers(self, now: float) -> None:
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
        if now >= self._peer_tick_at:
            self._peer_tick_at = now + PEER_TICK_S
            self._maintain_peers(now)
        if now >= self._cache_sweep_at:
            self._cache_sweep_at = now + COORDS_CACHE_LIFETIME_S
            self.traffic.sweep_coords_cache(now)
            self._seen_broadcasts.sweep(now)
        if self.config.wakeup_broadcasts and now >= self._broadcast_at:
            self._broadcast_at = now + WAKEUP_INTERVAL_S
            self._maintain_broadcasts(now)

    def _maintain_peers(self, now: float) -> None:
        for port in list(self.peers):
            if self.config.peer_timeouts and now - self._last_received.get(port, now) >= PEER_TIMEOUT_S:
                self.close_peer(port, "no frames for 5 s", now, cause=CloseCause.SILENT)
            elif now - self._last_sent.get(port, -1e18) >= KEEPALIVE_INTERVAL_S:
                self.send(port, KEEPALIVE_FRAME, now)

    # ------------------------------------------------------------ output plumbing

    def send(self, port: int, data: bytes, now: float, traffic: bool = False) -> None:
        self._last_sent[port] = now
        self._out.append(SendFrame(port, data, traffic))

    def emit(self, output: Output) -> None:
        self._out.append(output)

    def _changed(self) -> None:
        """Routing state changed: cached forwarding decisions are void."""
        self.traffic.invalidate()
        self._report_pending = True

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
                if state[1][0] != old_root[0]:
                    # Cached coordinates were learned under the old root and lead
                    # nowhere under the new one.  (The reference clears them only
                    # when the root changes through a change of parent.)
                    self.traffic.coords_cache.clear()
            if state[2] != old_desc:
                self._out.append(DescendingChanged(self.descending.key if self.descending else None))
        out, self._out = self._out, []
        return out

    def _sequence_ms(self, now: float) -> int:
        """Milliseconds for bootstrap and broadcast sequences, strictly increasing."""
        value = max(int((now + self.config.clock_offset_s) * 1000), self._last_sequence_ms + 1)
        self._last_sequence_ms = value
        return value

    # ------------------------------------------------------------ spanning tree

    def _root_announcement(self) -> RootAnnouncement:
        if self.parent is not None and (ann := self.announcements.get(self.parent)) is not None:
            return ann.announcement
        own = self._self_announcement
        if own is None or own.root_sequence != self.sequence:
            own = self._self_announcement = RootAnnouncement.create(self.key, self.sequence)
        return own

    def root(self) -> Root:
        ann = self._root_announcement()
        return ann.root_key, ann.root_sequence

    def coordinates(self) -> tuple[int, ...]:
        return self._root_announcement().coordinates

    def _send_announcement_to(self, port: int, ann: RootAnnouncement, now: float) -> None:
        if ann.is_loop_or_child_of(self.key):
            self.drops["announcement would loop"] += 1
            return
        try:
            signed = ann.with_hop(self.identity, port, sign=self.config.sign)
            data = encode_frame(TreeAnnouncementFrame(signed.raw))
        except EncodeError:
            self.drops["announcement too long to extend"] += 1
            return
        self._announced[port] = (ann, now)
        self.send(port, data, now)

    def _send_tree_announcements(self, now: float) -> None:
        ann = self._root_announcement()
        for port in self.peers:
            self._send_announcement_to(port, ann, now)

    def _set_parent(self, port: int | None, now: float) -> None:
        old_root = self._root_announcement().root_key
        if port != self.parent:
            self._settling_until = now + self.config.settle_window_s
        self.parent = port
        if self._root_announcement().root_key != old_root:
            self.traffic.coords_cache.clear()
        self._changed()

    def _maintain_tree(self, now: float) -> None:
        self._tree_at = now + ROOT_ANNOUNCEMENT_INTERVAL_S
        if self.parent is None:
            self.sequence += 1
            self._changed()
            self._send_tree_announcements(now)

    def _become_root(self, now: float) -> None:
        if self.parent is None:
            return
        self._set_parent(None, now)
        self._maintain_tree(now)

    def _handle_announcement(self, port: int, frame: TreeAnnouncementFrame, now: float) -> None:
        if len(frame.payload) > MAX_ACCEPTED_ANNOUNCEMENT_SIZE:
            # We could not add our own hop and still fit a frame.
            raise DecodeError(f"announcement of {len(frame.payload)} bytes is too long to extend")
        budget = self._budgets.get(port)
        if self.config.verify_signatures and budget is not None and budget.spent(now):
            # Not even parsed: a deep one would cost a millisecond before its signatures.
            self.drops["over budget: announcement"] += 1
            return
        ann = decode_announcement(frame.payload, verify=False)
        # The cheap checks first; each failure closes the peer, as a bad signature does.
        ann.sanity_check(self.peer_keys[port])
        stored = self.announcements.get(port)
        if stored is not None and stored.root[0] == ann.root_key and ann.root_sequence < stored.root[1]:
            raise DecodeError("announcement sequence went backwards for the same root")
        # Charged a check for each signature not verified before: a deep
        # announcement of fresh hops costs hundreds.
        if self.config.verify_signatures and not self._verified.verify(
            ann, lambda checks: self._afford(port, "announcement", now, checks)
        ):
            return
        first = stored is None
        peer_key = self.peer_keys[port]
        send_broadcast = first and not any(
            self.peer_keys[p] == peer_key for p in self.announcements if p != port
        )
        last = self._root_announcement()
        delta = (ann.root_key > last.root_key) - (ann.root_key < last.root_key)
        self._ordering += 1
        self.announcements[port] = PeerAnnouncement.of(ann, now, self._ordering)
        self._changed()
        if self._waiting_until is None:
            action = announcement_action(
                from_parent=port == self.parent,
                loop=ann.is_loop_or_child_of(self.key),
                root_delta=delta,
                sequence=ann.root_sequence,
                last_sequence=last.root_sequence,
            )
            self.stats[f"announcement: {action.value}"] += 1
            self._apply_action(action, port, last, first, now)
        if send_broadcast:
            self.send(port, self._wakeup_frame(now), now)

    def _apply_action(
        self, action: AnnouncementAction, port: int, last: RootAnnouncement, first: bool, now: float
    ) -> None:
        if action is AnnouncementAction.ACCEPT_UPDATE:
            self._send_tree_announcements(now)
        elif action is AnnouncementAction.ACCEPT_NEW_PARENT:
            self._set_parent(port, now)
            self._send_tree_announcements(now)
        elif action is AnnouncementAction.SELECT_NEW_PARENT:
            if self._select_new_parent(now):
                self._bootstrap_soon(now)
        elif action is AnnouncementAction.SELECT_NEW_PARENT_WITH_WAIT:
            self._waiting_until = now + REPARENT_WAIT_S
            self._become_root(now)
        elif action is AnnouncementAction.INFORM_PEER_OF_STRONGER_ROOT and not first:
            # Skipped when this very announcement is already on its way to the
            # peer (the two crossed on the link): a second copy tells it nothing,
            # and if it has meanwhile taken us as its parent, the copy reads as
            # "the parent re-sent an old update", which it must treat as bad news
            # (a 1 s reparent wait, and its subtree's with it).
            # Only a copy sent within the last second counts as crossing: an
            # older one the peer may have dropped since (a reset, a new parent
            # chosen without us), and it must hear of the stronger root again.
            told = self._announced.get(port)
            if told is None or told[0].raw != last.raw or now - told[1] >= CROSSING_WINDOW_S:
                self._send_announcement_to(port, last, now)

    def _select_new_parent(self, now: float) -> bool:
        """Pick the best parent; True if it changed to a peer (reference ``_selectNewParent``)."""
        current = self._root_announcement()
        best: Root = (current.root_key, current.root_sequence)
        if best[0] < self.key:
            best = (self.key, 0)
        best_order = 1 << 64
        best_port: int | None = None
        for port, ann in self.announcements.items():
            loop = ann.announcement.is_loop_or_child_of(self.key)
            if is_better_parent(ann, best, best_order, loop=loop, now=now):
                best, best_order, best_port = ann.root, ann.order, port
        if best_port is None:
            self._become_root(now)
            return False
        if best_port == self.parent:
            return False
        self._set_parent(best_port, now)
        self._send_tree_announcements(now)
        return True

    # ------------------------------------------------------------ virtual snake

    def _set_descending(self, entry: SnakeEntry | None, now: float) -> None:
        old = self.descending
        self.descending = entry
        self._report_pending = True
        if not (old is not None and entry is not None and old.key == entry.key):
            self._bootstrap_soon(now)

    def _bootstrap_soon(self, now: float) -> None:
        self._last_bootstrap = now - self.config.bootstrap_interval_s
        self._settling_until = now + self.config.settle_window_s

    def _maintain_snake(self, now: float) -> None:
        root = self.root()
        desc = self.descending
        if desc is not None and (not desc.valid(now) or desc.root != root):
            self._set_descending(None, now)
        expired = [e.key for e in self.routes.ordered if not e.valid(now)]
        for key in expired:
            del self.routes[key]
        if expired:
            self._changed()
        interval = (
            self.config.settle_bootstrap_interval_s
            if now < self._settling_until
            else self.config.bootstrap_interval_s
        )
        if now - self._last_bootstrap >= interval:
            self._bootstrap_now(now)

    def snek(
        self, destination: bytes, watermark: Watermark, *, bootstrap: bool, now: float
    ) -> tuple[int | None, Watermark]:
        """:func:`router.routing.snek.next_hop_snek` over this node's state."""
        return next_hop_snek(
            bootstrap=bootstrap,
            destination=destination,
            our_key=self.key,
            watermark=watermark,
            parent=self.parent,
            root_key=self._root_announcement().root_key,
            announcements=self.announcements,
            peer_keys=self.peer_keys,
            link_types=self.link_types,
            routes=self.routes,
            now=now,
        )

    def _bootstrap_now(self, now: float) -> None:
        if self.parent is None:
            return  # the root has nobody above it to bootstrap towards
        root_key, root_sequence = self.root()
        sequence = self._sequence_ms(now)
        if self.config.sign:
            body = sign_bootstrap(self.identity, sequence, root_key, root_sequence).encode()
        else:
            body = SignedRootStamp.protected(sequence, root_key, root_sequence) + bytes(64)
        port, watermark = self.snek(self.key, FULL_WATERMARK, bootstrap=True, now=now)
        if port is not None and port != LOCAL_PORT:
            self.stats["bootstraps sent"] += 1
            self.send(port, encode_frame(BootstrapFrame(self.key, watermark, body)), now)
        self._last_bootstrap = now

    def _handle_bootstrap_frame(self, port: int, frame: BootstrapFrame, now: float) -> None:
        """A bootstrap, checked and installed at every hop, then passed on (reference
        ``_handleBootstrap``).  The cheap checks come first, then the signature
        (a failure closes the peer: honest nodes never pass a bad one on), and
        only then the SNEK decision and the route install."""
        body = self._checked_bootstrap(port, frame, now)
        if body is None:
            return
        next_port, watermark = self.snek(frame.destination_key, frame.watermark, bootstrap=True, now=now)
        self._install_route(port, next_port, frame.destination_key, body, now)
        if next_port is None or next_port == LOCAL_PORT:
            self.stats["bootstraps ended here"] += 1
        elif next_port == port:
            self.drops["bootstrap back to sender"] += 1
        elif watermark.worse_than(frame.watermark):
            self.drops["bootstrap watermark"] += 1
        else:
            self.send(next_port, encode_frame(replace(frame, watermark=watermark)), now)

    def _checked_bootstrap(self, port: int, frame: BootstrapFrame, now: float) -> BootstrapBody | None:
        """The bootstrap's body if it is for our root and newer than the route we
        have from its origin; raises :class:`SignatureError` if it is forged."""
        origin = frame.destination_key
        try:
            body = decode_bootstrap(frame.payload)
        except DecodeError:
            self.drops["bootstrap invalid"] += 1
            return None
        root = self.root()
        if (body.root_key, body.root_sequence) != root:
            self.drops["bootstrap for another root"] += 1
            return None
        existing = self.routes.get(origin)
        if existing is not None and existing.root == root and body.sequence <= existing.sequence:
            self.drops["bootstrap replayed"] += 1
            return None
        if self.config.verify_signatures:
            if not self._afford(port, "bootstrap", now):
                return None
            body.verify(origin)
        return body

    def _afford(self, port: int, kind: str, now: float, checks: int = 1) -> bool:
        """Take ``checks`` signature checks from ``port``'s budget; drop and count if
        there are not that many left."""
        budget = self._budgets.get(port)
        if budget is None or budget.take(now, checks):
            return True
        self.drops[f"over budget: {kind}"] += 1
        return False

    def _install_route(
        self, port: int, next_port: int | None, origin: PublicKey, body: BootstrapBody, now: float
    ) -> None:
        entry = SnakeEntry(origin, port, next_port, body.sequence, now, self.root())
        self.routes[origin] = entry
        self._changed()
        if origin < self.key:
            desc = self.descending
            if desc is None or not desc.valid(now) or desc.key == origin or desc.key < origin:
                self._set_descending(entry, now)

    # ------------------------------------------------------------ wakeup broadcasts

    def _wakeup_frame(self, now: float) -> bytes:
        root_key, root_sequence = self.root()
        sequence = self._sequence_ms(now)
        if self.config.sign:
            body = sign_wakeup(self.identity, sequence, root_key, root_sequence).encode()
        else:
            body = SignedRootStamp.protected(sequence, root_key, root_sequence) + bytes(64)
        return encode_frame(WakeupBroadcastFrame(self.key, body, hop_limit=WAKEUP_HOP_LIMIT))

    def _maintain_broadcasts(self, now: float) -> None:
        self._seen_broadcasts.sweep(now)
        self._flood(LOCAL_PORT, self._wakeup_frame(now), tree_only=False, now=now)

    def _handle_broadcast(self, port: int, frame: WakeupBroadcastFrame, now: float) -> None:
        try:
            body = decode_wakeup(frame.payload)
        except DecodeError:
            # Relayed bytes from afar, which the reference's lax decoder would
            # pass on: drop them rather than close the honest peer.
            self.drops["broadcast malformed"] += 1
            return
        # The cheap checks come before the signature (the reference verifies
        # first): they only ever drop, and floods bring many duplicates.
        if body.root_key != self.root()[0]:
            self.drops["broadcast for another root"] += 1
            return
        if self._seen_broadcasts.is_duplicate(frame.source_key, body.sequence, now):
            self.drops["broadcast duplicate"] += 1
            return
        if self.config.verify_signatures:
            if not self._afford(port, "broadcast", now):
                return
            body.verify(frame.source_key)
        self._seen_broadcasts.accept(frame.source_key, body.sequence, now)
        self.emit(BroadcastReceived(frame.source_key))
        if frame.hop_limit <= 1:
            return
        hop_limit = frame.hop_limit - 1
        onward = encode_frame(replace(frame, hop_limit=hop_limit))
        self._flood(port, onward, tree_only=hop_limit < WAKEUP_HOP_LIMIT - 1, now=now)

    def _flood(self, from_port: int, data: bytes, *, tree_only: bool, now: float) -> None:
        """One copy to each distinct neighbour key (the fastest link to it), never back
        to ``from_port``; ``tree_only`` keeps to our parent and children."""
        coords = self.coordinates()
        chosen: dict[bytes, int] = {}
        for port, key in sorted(self.peer_keys.items()):
            if port == from_port:
                continue
            ann = self.announcements.get(port)
            if tree_only and (ann is None or tree_distance(ann.peer_coordinates, coords) != 1):
                continue
            current = chosen.get(key)
            if current is None:
                chosen[key] = port
                continue
            current_ann = self.announcements.get(current)
            if self.link_types[port] < self.link_types[current] or (
                ann is not None and current_ann is not None and ann.order < current_ann.order
            ):
                chosen[key] = port
        for port in chosen.values():
            self.send(port, data, now)
