"""The state of one node's routing: what the spanning tree, the snake, the
broadcasts and the traffic path all read and change.

:class:`RoutingState` holds the peer table, the peers' announcements, the route
table, the parent and descending node, the counters and the outputs waiting to
be returned, and answers the questions every part asks of it (our root and
coordinates, the SNEK next hop, the signature budget).  The parts are
:mod:`router.routing.tree_state`, :mod:`router.routing.snake_state` and
:mod:`router.routing.broadcast_state`, put together with the traffic path
(:mod:`router.routing.traffic`) by :class:`router.routing.core.RouterCore`, as
the reference splits one ``state`` across ``state_tree.go``, ``state_snek.go``
and ``state_broadcast.go``.  Sans-I/O.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from router.routing.broadcasts import HeldBroadcast, SeenBroadcasts
from router.routing.budget import SIGNATURE_CHECKS_BURST, SIGNATURE_CHECKS_PER_S, TokenBucket
from router.routing.constants import (
    BOOTSTRAP_INTERVAL_S,
    BROADCAST_EXPIRY_S,
    BROADCAST_FILTER_S,
    COORDS_CACHE_LIFETIME_S,
    DEFAULT_MAX_PEERS,
    MAX_SEEN_BROADCASTS,
    PEER_TICK_S,
    QUIET_BOOTSTRAP_INTERVAL_S,
    QUIET_ENTRY_MARGIN_S,
    SETTLE_BOOTSTRAP_INTERVAL_S,
    SETTLE_WINDOW_S,
    WAKEUP_HOP_LIMIT,
    WAKEUP_INTERVAL_S,
)
from router.routing.lookahead import unpack_claims
from router.routing.outputs import (
    Output,
    SendFrame,
)
from router.routing.snek import RouteTable, SignerIndex, SnakeEntry, next_hop_snek
from router.routing.tree import (
    PeerAnnouncement,
    Root,
)
from router.routing.verified import VerifiedAnnouncements
from router.wire.announcement import RootAnnouncement
from router.wire.broadcast import sign_wakeup
from router.wire.coordinates import Coordinates, decode_coordinate_ports
from router.wire.extension import Extension
from router.wire.frames import (
    WakeupBroadcastFrame,
    encode_frame,
)
from router.wire.keys import Identity, PublicKey
from router.wire.snake import (
    SignedRootStamp,
    Watermark,
)

PATH_REPAIR_BIT = int(Extension.PATH_REPAIR)
LOOKAHEAD_BIT = int(Extension.LOOKAHEAD)
QUIET_PATHS_BIT = int(Extension.QUIET_PATHS)
MAX_QUIET_LEVEL = 16
"""Past this many doublings any wait is longer than the quiet interval."""


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
    quiet_bootstrap_interval_s: float = QUIET_BOOTSTRAP_INTERVAL_S
    """The longest wait between bootstraps while they keep being confirmed (quiet
    paths); like ``bootstrap_interval_s``, changed only by the simulator."""
    broadcast_hold_s: float = 0.0
    """How long another node's wakeup broadcast is held at most before it is
    flooded on, so that neighbours who sent us the same one meanwhile are
    skipped (0: at once, as the reference does)."""
    extensions: int = 0
    """The :class:`router.wire.extension.Extension` bits this node announces; a
    peering uses those both ends announced (0: the reference's behaviour)."""

    @property
    def quiet_entry_expiry_s(self) -> float:
        """How long a confirmed route entry lives (quiet paths): two quiet
        intervals and a margin (``QUIET_ENTRY_EXPIRY_S`` by default)."""
        return 2 * self.quiet_bootstrap_interval_s + QUIET_ENTRY_MARGIN_S


@dataclass(frozen=True, slots=True)
class PeerInfo:
    port: int
    key: PublicKey
    link_type: int


class RoutingState:
    """One node's routing tables and the questions asked of them."""

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
        """Changed only where ``_signers_stale`` is set with it (and ``peer_keys`` too)."""
        self._signer_index: SignerIndex | None = None
        self._signers_stale = True
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
        # Plain ints: an IntFlag operation makes a new enum member each time, and
        # these are tested on every timer and lost link.
        self.uses_path_repair = bool(self.config.extensions & PATH_REPAIR_BIT)
        self.uses_lookahead = bool(self.config.extensions & LOOKAHEAD_BIT)
        self.peer_extensions: dict[int, int] = {}
        """The extensions each peering uses: what both ends announced."""
        self._notices_passed: dict[PublicKey, int] = {}
        """The bootstrap sequence of each path a notice towards its origin was last
        passed on for (each is passed on once)."""
        self.neighbour_claims: dict[int, bytes] = {}
        """What each lookahead peer told us of its peers under ``claims_root``, packed
        (:func:`router.routing.lookahead.pack_claims`): a fifth of the memory of a
        dict of keys and coordinates, and most nodes hold some tens of them."""
        self.claims_root: Root | None = None
        self._claims_sent: dict[Root, list[tuple[PublicKey, bytes]]] = {}
        """What we last told our lookahead peers of ours, by root: (key, raw announcement),
        shallowest first, one more than a peer takes."""
        self._claims_told: dict[int, Root] = {}
        """The root each lookahead peer was last told of our peers under."""
        self._claims_dirty = False
        self._last_bootstrap_port: int | None = None
        self._last_bootstrap_sequence = -1
        self._confirmed_sequence = -1
        """The sequence of our last bootstrap whose path was confirmed end to end
        (quiet paths): while it is our last, we bootstrap on the quiet schedule."""
        self._confirmed_port: int | None = None
        """Where that bootstrap went, while each since went there and was confirmed."""
        self._quiet_level = 0
        """How many bootstraps in a row were confirmed going out on ``_confirmed_port``:
        the quiet schedule doubles the wait with each, up to its interval."""
        self._last_repair = -1e18
        self._seen_broadcasts = SeenBroadcasts(
            now, filter_s=BROADCAST_FILTER_S, expiry_s=BROADCAST_EXPIRY_S, capacity=MAX_SEEN_BROADCASTS
        )
        self._verified = VerifiedAnnouncements()
        self._self_announcement: RootAnnouncement | None = None
        self._out: list[Output] = []
        self._report_pending = True
        self._reported: tuple[int | None, Root, bytes | None] = (None, (self.key, 0), None)
        self._tree_at = now
        self._snake_at = now
        self._peer_tick_at = now + PEER_TICK_S
        self._clock = now
        """The time the latest input (a frame, a timer, a peer) came with."""
        self._claims_at = math.inf
        """When changes to tell the lookahead peers go out (while there are some)."""
        self._cache_sweep_at = now + COORDS_CACHE_LIFETIME_S
        self._broadcast_at = now + WAKEUP_INTERVAL_S
        self._held_broadcasts: dict[tuple[bytes, int], HeldBroadcast] = {}
        """Others' broadcasts accepted and not yet flooded on, by source and sequence."""
        self._held_until = math.inf
        """When the first held broadcast is due."""

    def send(self, port: int, data: bytes, now: float, traffic: bool = False) -> None:
        self._last_sent[port] = now
        self._out.append(SendFrame(port, data, traffic))

    def emit(self, output: Output) -> None:
        self._out.append(output)

    def _changed(self) -> None:
        """Routing state changed: there are events to report, and decisions cached
        on the old state (the traffic path's) are void."""
        self._report_pending = True
        if not self._claims_dirty:
            self._claims_dirty = True
            self._claims_at = self._clock + PEER_TICK_S

    def neighbour_coordinates(self, root: Root) -> dict[int, list[Coordinates]]:
        """The coordinates under ``root`` of each lookahead peer's own peers."""
        if root != self.claims_root:
            return {}
        return {
            port: [decode_coordinate_ports(raw) for raw in unpack_claims(packed).values()]
            for port, packed in self.neighbour_claims.items()
            if packed
        }

    def _sequence_ms(self, now: float) -> int:
        """Milliseconds for bootstrap and broadcast sequences, strictly increasing."""
        value = max(int((now + self.config.clock_offset_s) * 1000), self._last_sequence_ms + 1)
        self._last_sequence_ms = value
        return value

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
            signers=self._signers(),
        )

    def _signers(self) -> SignerIndex | None:
        """The index of the peers' ancestors, rebuilt after the announcements changed."""
        if self._signers_stale:
            self._signer_index = SignerIndex.build(self.announcements, self.peer_keys)
            self._signers_stale = False
        return self._signer_index

    def _afford(self, port: int, kind: str, now: float, checks: int = 1) -> bool:
        """Take ``checks`` signature checks from ``port``'s budget; drop and count if
        there are not that many left."""
        budget = self._budgets.get(port)
        if budget is None or budget.take(now, checks):
            return True
        self.drops[f"over budget: {kind}"] += 1
        return False

    def _bootstrap_soon(self, now: float) -> None:
        self._last_bootstrap = now - self.config.bootstrap_interval_s
        self._settling_until = now + self.config.settle_window_s

    def _set_descending(self, entry: SnakeEntry | None, now: float) -> None:
        old = self.descending
        self.descending = entry
        self._report_pending = True
        if not (old is not None and entry is not None and old.key == entry.key):
            self._bootstrap_soon(now)

    def _descending_displaced(self, old: SnakeEntry, now: float) -> None:
        """A closer node took ``old``'s place as our descending node (path repair
        tells ``old``; without extensions nothing happens)."""

    def _bootstrap_ended_here(self, port: int, entry: SnakeEntry, now: float) -> None:
        """A bootstrap from the peer on ``port`` installed ``entry`` and ended here
        (quiet paths confirms it; without extensions nothing happens)."""

    def _route_replaced(self, old: SnakeEntry, onward: int | None, now: float) -> None:
        """A newer bootstrap of ``old``'s origin replaced it, and went on to
        ``onward`` (None: it ended or was dropped here).  Quiet paths cleans up
        after it; without extensions nothing happens."""

    def _bootstrap_replaced(self, port: int | None, sequence: int, now: float) -> None:
        """We just bootstrapped again; our previous bootstrap went out on ``port``
        with ``sequence`` (quiet paths cleans up after it)."""

    def _bootstrap_interval(self, now: float) -> float:
        if now < self._settling_until:
            return self.config.settle_bootstrap_interval_s
        if self._confirmed_sequence >= 0 and self._confirmed_sequence == self._last_bootstrap_sequence:
            wait = self.config.bootstrap_interval_s * (1 << min(self._quiet_level, MAX_QUIET_LEVEL))
            return min(wait, self.config.quiet_bootstrap_interval_s)
        return self.config.bootstrap_interval_s

    def _wakeup_frame(self, now: float) -> bytes:
        root_key, root_sequence = self.root()
        sequence = self._sequence_ms(now)
        if self.config.sign:
            body = sign_wakeup(self.identity, sequence, root_key, root_sequence).encode()
        else:
            body = SignedRootStamp.protected(sequence, root_key, root_sequence) + bytes(64)
        return encode_frame(WakeupBroadcastFrame(self.key, body, hop_limit=WAKEUP_HOP_LIMIT))

    def _forget_coordinates(self) -> None:
        """Coordinates learned from traffic were learned under another root (or a
        reset) and lead nowhere now; whoever caches them forgets them here."""
