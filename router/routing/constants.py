"""Every timer and limit of the routing core, in one place.

Most are the reference's (``router/consts.go`` and the ``state*.go`` files of
matrix-org/pinecone), named after it in a comment; the few that are Pinewood's
own say why.  Sans-I/O: seconds are compared with the ``now`` each call takes.
"""

from __future__ import annotations

# Peerings
KEEPALIVE_INTERVAL_S = 3.0  # reference: peerKeepaliveInterval
PEER_TIMEOUT_S = 5.0  # reference: peerKeepaliveTimeout
PEER_TICK_S = 0.5  # the grid keepalive and dead-peer checks fall on
LINK_TYPE_MULTICAST = 1  # reference peer types: lower is preferred (pipe 0, multicast 1,
LINK_TYPE_REMOTE = 3  # Bonjour 2, remote 3, Bluetooth 4)
DEFAULT_MAX_PEERS = 253  # reference: portCount - 1 (port 0 is the node itself)

# The spanning tree
ROOT_ANNOUNCEMENT_INTERVAL_S = 30 * 60.0  # reference: announcementInterval
ANNOUNCEMENT_TIMEOUT_S = 45 * 60.0  # reference: announcementTimeout
REPARENT_WAIT_S = 1.0  # reference: the one-second hold-down after bad news
CROSSING_WINDOW_S = 1.0
"""An announcement sent to a peer this recently is taken to be crossing its own on the link."""
# 12 bytes of frame header and payload length, and our hop: port (up to 10),
# key (32) and signature (64).
MAX_ACCEPTED_ANNOUNCEMENT_SIZE = 0xFFFF - 12 - 10 - 32 - 64
MAX_ANNOUNCEMENT_HOPS = 256
"""Announcements deeper than this are dropped unverified (the reference takes any
depth a frame can hold, about 600 hops).  Checking one costs a signature per hop,
each over the whole prefix before it: about 140 ms of one core at 600 hops, in
one piece, which would hold back every other peer; at 256 hops about a sixth of
that.  Honest trees are far shallower (see docs/design.md)."""
MAX_ANNOUNCEMENT_HOP_BYTES = 32 + 10 + 64
"""The most one hop can take: key, port (a varu64) and signature."""
MAX_ANNOUNCEMENT_BYTES = 32 + 10 + MAX_ANNOUNCEMENT_HOPS * MAX_ANNOUNCEMENT_HOP_BYTES
"""The most an announcement of :data:`MAX_ANNOUNCEMENT_HOPS` hops can take: any
longer payload is deeper, and is dropped before it is parsed."""
MIN_ANNOUNCEMENT_HOP_BYTES = 32 + 1 + 64
"""The least one hop can take, so a payload of ``n`` bytes holds at most
``(n - 33) // 97`` hops: a peer's budget must hold that many checks before the
announcement is parsed."""

# The virtual snake
BOOTSTRAP_INTERVAL_S = 5.0  # reference: virtualSnakeBootstrapInterval
MAINTAIN_INTERVAL_S = 1.0  # reference: virtualSnakeMaintainInterval
ENTRY_EXPIRY_S = 10.0  # reference: virtualSnakeNeighExpiryPeriod
ENTRY_BOARDING_MARGIN_S = 1.5
"""A frame only takes a route entry with at least this long left to live, unless
its watermark already names that entry (it is riding the entry's path).

One bootstrap installs the entries along its path within milliseconds of each
other, and they expire in the same order, nearest the originator first.  When
the originator's next bootstrap takes another path, the old entries are left to
expire; a frame that takes one in its last moments meets the expiry a few hops
on and is dropped there.  An entry that has missed a refresh (they come every
``BOOTSTRAP_INTERVAL_S``) is not offered to new frames for its last
``ENTRY_BOARDING_MARGIN_S``, longer than any path takes to cross, so a frame on
it reaches the end before any entry along the way expires.  Decisions stay per
node and nothing changes on the wire."""
SETTLE_WINDOW_S = 6.0
SETTLE_BOOTSTRAP_INTERVAL_S = 0.5
"""Not the reference's: while this node's place in the tree or the snake is changing,
it bootstraps every half second, for six seconds after the last change, rather than
every five (the snake's maintenance tick runs as often meanwhile).  A bootstrap sent
while the routes around it are half built can end at the wrong node, and the
reference only tries again five seconds later; settling sooner costs at most twelve
more bootstraps per change, and bootstraps are ordinary frames to every other node,
so Go nodes are unaffected."""

# Path repair (Pinewood's own, between Pinewood nodes only: router.routing.repair_state)
REPAIR_MIN_INTERVAL_S = 0.5
"""An origin told that its bootstrap path broke sends a new bootstrap at once, but
at most this often; a notice inside the interval makes the next maintenance tick
bootstrap instead."""
REPAIR_SETTLE_S = 2.0
"""After a repair the origin bootstraps on the settling schedule for this long: the
nodes around the break are rebuilding their own paths, and a bootstrap sent while
they do can end at the wrong node."""
# Quiet paths (Pinewood's own, between Pinewood nodes only: router.routing.quiet_state)
QUIET_BOOTSTRAP_INTERVAL_S = 30.0
"""The longest an origin whose bootstrap paths keep being confirmed end to end
waits between bootstraps (the wait doubles from ``BOOTSTRAP_INTERVAL_S`` with
each confirmation): path repair reports a break at once on such a path, so
the refresh only has to catch what changed without a lost link (a shorter
way opened up, a confirmation lost)."""
QUIET_ENTRY_MARGIN_S = 5.0
QUIET_ENTRY_EXPIRY_S = 2 * QUIET_BOOTSTRAP_INTERVAL_S + QUIET_ENTRY_MARGIN_S
"""How long a confirmed route entry lives: two quiet intervals and a margin, as
the reference's entries live two bootstrap intervals."""
# Lookahead (Pinewood's own, between Pinewood nodes only: router.routing.lookahead_state)
MAX_CLAIMS = 1024
"""Neighbour claims a node keeps from all its peers together (64 from any one): a hub
would otherwise hold tens of thousands, and weigh every one on each new decision."""

# Wakeup broadcasts
WAKEUP_INTERVAL_S = 60.0  # reference: wakeupBroadcastInterval
BROADCAST_EXPIRY_S = 180.0  # reference: broadcastExpiryPeriod
BROADCAST_FILTER_S = 30.0  # reference: broadcastFilterTime
WAKEUP_HOP_LIMIT = 5  # reference: types.NetworkHorizonDistance
MAX_SEEN_BROADCASTS = 65536
BROADCAST_HOLD_S = 0.5
"""Pinewood's own (``CoreConfig.broadcast_hold_s``): how long a node holds
another's broadcast at most before flooding it on, to learn which neighbours
already have it (from half of this to all of it, by node and broadcast)."""
MAX_HELD_BROADCASTS = 1024
"""Broadcasts held at once; past this they are flooded on at once."""

# Traffic
COORDS_CACHE_LIFETIME_S = 60.0  # reference: coordsCacheLifetime
