"""Who may become a peer.

Before any cryptography, a new connection must find room: handshakes in
progress are limited in total and per source network (/24, /64), and an address
held off after a forged frame is refused outright.  Failed, timed-out and
refused inbound handshakes are charged to their network; a network over its
budget is restricted to keys the node knows (``allow_keys``, pinned static
peers, keys that have held a peering).  After the handshake, the refusal policy
decides whether the proved key may peer.  Every refusal and failure is counted
by reason and logged at most once a minute per source address and reason.
"""

from __future__ import annotations

import ipaddress
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable

from router.daemon.holdoff import HoldOffs
from router.links.peer import PeerLink
from router.logs import get_logger
from router.wire.keys import PublicKey

MAX_RATE_BUCKETS = 65536
MAX_PENDING_PER_NETWORK = 16
"""Handshakes in progress from one source network (/24 or /64) at once."""
HANDSHAKE_BUDGET_WINDOW_S = 60.0
HANDSHAKE_LOG_INTERVAL_S = 60.0
"""At most one log line per source address and reason in this time."""
MAX_KNOWN_KEYS = 1024

log = get_logger("pinewood")


def address_bucket(host: str) -> str:
    """The network a source address belongs to for rate limits: its /24 (IPv4)
    or /64 (IPv6), so that one operator's many addresses share one budget."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def remote_host(remote: str) -> str:
    """The host part of a ``host:port`` remote address (brackets and zone dropped)."""
    return remote.rpartition(":")[0].strip("[]").split("%")[0]


class Admission:
    """The node's admission of connections and keys."""

    def __init__(
        self,
        *,
        key: PublicKey,
        handshakes_per_minute: int,
        max_peers: int,
        allow_keys: Iterable[bytes],
        counters: Counter[str],
        clock: Callable[[], float],
        pinned_keys: Callable[[], Iterable[bytes | None]],
        inbound_peers: Callable[[], int],
        reserved_slots: Callable[[], int],
    ) -> None:
        self.key = key
        self.handshakes_per_minute = handshakes_per_minute
        self.max_peers = max_peers
        self.allowed = frozenset(allow_keys)
        self.counters = counters
        self.clock = clock
        self.pinned_keys = pinned_keys
        """The keys pinned by the operator's static peers (None where none is)."""
        self.inbound_peers = inbound_peers
        self.reserved_slots = reserved_slots
        """Peer slots kept free for the operator's static peers."""
        self.pending: set[PeerLink] = set()
        self.max_pending = max(64, 2 * max_peers)
        self.held_keys = HoldOffs()
        self.held_addresses = HoldOffs()
        self._failures: dict[str, deque[float]] = {}
        self._known_keys: OrderedDict[bytes, None] = OrderedDict()
        """Keys that have held a peering with us (most recent last): a restricted
        network's links may still bring them in."""
        self._logged: dict[tuple[str, str], float] = {}

    # ------------------------------------------------------------ before the handshake

    def admit(self, link: PeerLink) -> bool:
        """Limit handshakes in progress, in total and per source network, before
        doing any cryptography.  A network that has caused too many failed,
        timed-out or refused handshakes in the last minute is not refused: its
        links are restricted to keys this node knows (:meth:`key_admissible`)."""
        if len(self.pending) >= self.max_pending:
            self.refuse(link, "too many pending", "too many handshakes in progress")
            return False
        if link.outbound is None:
            host = remote_host(link.remote)
            now = self.clock()
            if self.held_addresses.remaining(host, now):
                self.refuse(link, "address held off", "address held off after a bad signature")
                return False
            bucket = address_bucket(host)
            if sum(1 for p in self.pending if p.network == bucket) >= MAX_PENDING_PER_NETWORK:
                self.refuse(link, "too many pending from one network", "")
                return False
            link.network = bucket
            failures = self._failures.get(bucket)
            if failures is not None:
                while failures and now - failures[0] > HANDSHAKE_BUDGET_WINDOW_S:
                    failures.popleft()
                if len(failures) >= self.handshakes_per_minute:
                    link.restricted = True
                    self.counters["handshakes restricted to known keys"] += 1
        self.pending.add(link)
        return True

    def key_admissible(self, link: PeerLink, key: PublicKey) -> bool:
        """Whether a restricted link's handshake, claiming ``key``, is worth
        verifying: only for the operator's keys (``allow_keys``, pinned static
        peers) and keys that have held a peering with this node before."""
        if not link.restricted or key in self.allowed or key in self._known_keys:
            return True
        if key in set(self.pinned_keys()):
            return True
        self.refuse(link, "network over its failure budget", "")
        return False

    # ------------------------------------------------------------ after the handshake

    def refusal(self, link: PeerLink, key: PublicKey) -> tuple[str, str] | None:
        """Why a link whose handshake proved ``key`` may not become a peering, if
        it may not: a fixed category (for counters) and the detail (for logs)."""
        expected = link.expected_key
        if key == self.key:
            return "connected to ourselves", ""
        if held := self.held_keys.remaining(key.hex(), self.clock()):
            return "key held off", f"after a bad signature, {held:.0f} s more"
        if expected is not None and key != expected:
            log.warning("pinned key mismatch", uri=link.outbound, got=key.hex())
            return "pinned key mismatch", f"peer proved key {key.hex()}, expected {expected.hex()}"
        # Our own TLS and QUIC peerings always present the node's key; a wss://
        # peer may sit behind a web server with a certificate of its own, so its
        # certificate is held to the key only when one is pinned.
        checks_certificate = link.scheme in ("tls", "quic") or (link.scheme == "wss" and expected is not None)
        if checks_certificate and link.outbound is not None and link.certificate_key != key:
            log.warning("TLS certificate and handshake keys differ", uri=link.outbound, handshake=key.hex())
            return "TLS certificate for another key", ""
        if link.outbound is None:
            if self.allowed and key not in self.allowed:
                return "key not in allow_keys", ""
            if self.inbound_peers() >= self.max_peers - self.reserved_slots():
                # Slots for the operator's own peers are kept free of strangers.
                return "no free inbound peer slots", ""
        return None

    def remember(self, key: bytes) -> None:
        """``key`` now holds a peering with us."""
        self._known_keys[key] = None
        self._known_keys.move_to_end(key)
        if len(self._known_keys) > MAX_KNOWN_KEYS:
            self._known_keys.popitem(last=False)

    # ------------------------------------------------------------ refusals and failures

    def refuse(self, link: PeerLink, category: str, detail: str) -> None:
        """Count, log (bounded) and charge a refusal, and close the link."""
        self.counters[f"handshakes refused: {category}"] += 1
        self._log(link, "handshake refused", category)
        self._charge(link)
        link.close(f"{category}: {detail}" if detail else category)

    def failed(self, link: PeerLink) -> None:
        """A link closed before its handshake made it a peering."""
        reason = link.close_reason or ""
        if reason.startswith("bad handshake"):
            category = "bad handshake"
        elif reason.startswith("no handshake"):
            category = "timed out"
        else:
            category = "closed before the handshake"
        self.counters[f"handshakes failed: {category}"] += 1
        self._log(link, "handshake failed", category)
        self._charge(link)

    def hold_off(self, link: PeerLink) -> None:
        """Refuse a peer that sent a forged frame, by key and by address, for a while."""
        now = self.clock()
        host = remote_host(link.remote)
        key = link.handshake.public_key.hex() if link.handshake is not None else ""
        seconds = self.held_keys.strike(key, now) if key else 0.0
        self.held_addresses.strike(host, now)
        self.counters["peers held off: bad signature"] += 1
        log.warning("peer held off after a bad signature", key=key, address=host, seconds=seconds)

    def sweep(self) -> None:
        """Forget what has run out (run every minute)."""
        now = self.clock()
        self.held_keys.sweep(now)
        self.held_addresses.sweep(now)
        for bucket in [
            b for b, t in self._failures.items() if not t or now - t[-1] > HANDSHAKE_BUDGET_WINDOW_S
        ]:
            del self._failures[bucket]
        for source in [s for s, t in self._logged.items() if now - t > HANDSHAKE_LOG_INTERVAL_S]:
            del self._logged[source]

    def _charge(self, link: PeerLink) -> None:
        """An inbound handshake cost us and came to nothing: charge its network."""
        if link.outbound is not None or link.charged:
            return
        link.charged = True
        bucket = link.network or address_bucket(remote_host(link.remote))
        failures = self._failures.get(bucket)
        if failures is None:
            if len(self._failures) >= MAX_RATE_BUCKETS:
                self.counters["handshake failures not charged: rate table full"] += 1
                return
            failures = self._failures[bucket] = deque(maxlen=self.handshakes_per_minute)
        failures.append(self.clock())

    def _log(self, link: PeerLink, event: str, category: str) -> None:
        """One log line per source address and category a minute, however many there are."""
        host = remote_host(link.remote)
        now = self.clock()
        last = self._logged.get((host, category))
        if last is not None and now - last < HANDSHAKE_LOG_INTERVAL_S:
            return
        if last is None and len(self._logged) >= MAX_RATE_BUCKETS:
            return
        self._logged[(host, category)] = now
        log.warning(event, address=host, reason=category, uri=link.outbound)
