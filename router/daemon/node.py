"""The node runtime: asyncio around one :class:`~router.routing.core.RouterCore`.

It owns the links, their queues and one timer that follows the core's
``next_deadline()``; it moves bytes and never decides where a frame goes.  What
it runs beside the core has a module each: :mod:`router.daemon.transports`
(listeners and dialling), :mod:`router.daemon.admission` (who may peer),
:mod:`router.daemon.static_peers`, :mod:`router.daemon.lan` (LAN discovery) and
:mod:`router.daemon.delivery` (what arrives for this node); and above the
router the sessions, the relay and the homeserver gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from relay.client import RelayClient, RelayClientSettings
from relay.errors import RelayError
from relay.homeserver import ReplayPolicy
from relay.protocol import ALPN as RELAY_ALPN
from router.daemon.admission import Admission
from router.daemon.config import NodeConfig, parse_host_port
from router.daemon.delivery import LocalDelivery
from router.daemon.duplicates import PeeringFacts, duplicate_to_close
from router.daemon.errors import StartupError
from router.daemon.lan import LanPeers
from router.daemon.saved_peers import SavedPeers
from router.daemon.static_peers import PeerSource, StaticPeer, StaticPeers
from router.daemon.transports import Transports
from router.gateway.errors import GatewayError
from router.gateway.service import Gateway, GatewaySettings
from router.gateway.shares import ShareLimits
from router.links.owner import LinkSettings
from router.links.peer import PeerLink
from router.links.uri import PeerURI, parse_peer_uri
from router.logs import get_logger
from router.matrix.federation import ALPN as MATRIX_ALPN
from router.routing.constants import BROADCAST_HOLD_S
from router.routing.core import CoreConfig, RouterCore
from router.routing.outputs import (
    BroadcastReceived,
    CloseCause,
    ClosePeer,
    Deliver,
    DescendingChanged,
    Output,
    ParentChanged,
    RootChanged,
    SendFrame,
)
from router.routing.tree import LOCAL_PORT
from router.sessions.runtime import Sessions
from router.sessions.session import Limits as SessionLimits
from router.wire.extension import Extension
from router.wire.fastpath import is_traffic_frame
from router.wire.handshake import build_handshake
from router.wire.keys import Identity, PublicKey

if TYPE_CHECKING:
    from relay.service import RelayService
    from relay.stores.base import Store

SESSION_PROTOCOLS = [MATRIX_ALPN, RELAY_ALPN]
"""Application protocols (ALPN) that sessions with this node may speak."""
SLICE_S = 0.005
"""The most time one peer's frames get before the other peers' input is read."""
BACKLOG_CHUNK = 1024
SWEEP_INTERVAL_S = 60.0

# Frames with nowhere to go, counted in ``Node.counters`` by these names (the
# core counts its own in ``RouterCore.drops``; local delivery in its own names).
SENT_TO_CLOSED = "sent to a closed link"
UNSENT_AT_CLOSE = "frames unsent when their link closed"
UNHANDLED_FROM_CLOSED = "frames unhandled when their link closed"
DUPLICATE_CLOSED = "duplicate peerings closed"

log = get_logger("pinewood")


@contextlib.contextmanager
def startup_step(setting: str, what: str) -> Iterator[None]:
    """Turn an OS or store error met while starting into a :class:`StartupError`
    that says what failed and which setting to look at."""
    try:
        yield
    except (OSError, RelayError, GatewayError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        hint = (
            " (another process is using it)"
            if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE
            else ""
        )
        flag = "--" + setting.replace("_", "-")
        raise StartupError(f"{what}: {detail}{hint}; check the setting {setting} ({flag})") from None


LOGGED_HOPS = 8
"""Coordinates longer than this are shortened in log lines."""


def short_coordinates(coordinates: Sequence[int]) -> str:
    """Coordinates for a log line: all of them if few, else the first hops and how many there are."""
    if len(coordinates) <= LOGGED_HOPS:
        return " ".join(map(str, coordinates)) or "(root)"
    return " ".join(map(str, coordinates[:LOGGED_HOPS])) + f" ... ({len(coordinates)} hops)"


class Node:
    """A running Pinewood node."""

    def __init__(
        self, config: NodeConfig, identity: Identity, config_sources: Mapping[str, str] | None = None
    ) -> None:
        self.config = config
        self.config_sources: Mapping[str, str] = config_sources or {}
        """Where each setting's value came from (see :func:`router.daemon.config.load_config_sources`)."""
        self.identity = identity
        self.loop = asyncio.get_running_loop()
        now = self.loop.time()
        self.core = RouterCore(
            identity,
            now,
            CoreConfig(
                hop_limiting=config.hop_limiting,
                wakeup_broadcasts=config.wakeup_broadcasts,
                max_peers=config.max_peers,
                clock_offset_s=time.time() - now,
                extensions=config.extension_bits,
                # Routing as the reference does (no extensions) floods broadcasts at once too.
                broadcast_hold_s=BROADCAST_HOLD_S if config.extension_bits else 0.0,
            ),
        )
        self.started_at = now
        self.handshake_bytes = build_handshake(identity, config.extension_bits)
        self.link_settings = LinkSettings(
            config.handshake_timeout,
            config.traffic_queue_frames,
            config.peer_receive_buffer,
            config.queue_target_ms / 1000,
            config.peer_send_buffer,
        )
        self.links: dict[int, PeerLink] = {}
        self.counters: Counter[str] = Counter()
        self.control_bytes_out: Counter[int] = Counter()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._logged_root: bytes = b""
        self._sweeper: asyncio.TimerHandle | None = None
        self._stopping = False
        self.transports = Transports(
            self,
            identity,
            config.data_path / "tls",
            config.handshake_timeout,
            self.counters,
            config.quic_engine,
        )
        self.static_peers = StaticPeers(self.transports.dial)
        self.saved_peers = SavedPeers(config.data_path)
        self.admission = Admission(
            key=identity.public_key,
            handshakes_per_minute=config.handshakes_per_minute,
            max_peers=config.max_peers,
            allow_keys=(bytes.fromhex(k) for k in config.allow_keys),
            counters=self.counters,
            clock=self.loop.time,
            pinned_keys=self.static_peers.pinned_keys,
            inbound_peers=lambda: sum(1 for link in self.links.values() if link.outbound is None),
            reserved_slots=lambda: len(self.static_peers),
        )
        self.lan = LanPeers(identity.public_key, self.transports, self._peer_keys, self.counters)
        self.sessions = Sessions(
            identity,
            SESSION_PROTOCOLS,
            self.send,
            SessionLimits(connect_timeout_s=config.session_timeout),
        )
        self.relay_client = RelayClient(
            identity,
            self.sessions,
            self.send_by_key,
            config.data_path,
            RelayClientSettings(
                relays=tuple(bytes.fromhex(k) for k in config.relays),
                homeserver=config.homeserver_address if config.homeserver else None,
                fetch_interval_s=config.relay_fetch_interval,
                lifetime_s=config.relay_max_expiry,
                allow_direct=config.relay_direct,
                replay_policy=ReplayPolicy(config.gateway_federation_paths, config.server_name_suffix),
            ),
            is_highest=lambda: self.core.root()[0] == self.core.key,
        )
        self.delivery = LocalDelivery(
            identity.public_key, self.send, self.relay_client.datagram, self.sessions.datagram, self.counters
        )
        self.relay_service: RelayService | None = None
        self._relay_store: Store | None = None
        self._relay_sweeper: asyncio.Task[None] | None = None
        self.gateway = Gateway(
            GatewaySettings(
                key=bytes(identity.public_key),
                server_name_suffix=config.server_name_suffix,
                ca_dir=config.data_path / "gateway",
                listen=parse_host_port(config.gateway_listen, "gateway_listen")
                if config.gateway_listen
                else None,
                homeserver=config.homeserver_address if config.homeserver else None,
                homeserver_url=config.homeserver,
                session_timeout=config.session_timeout,
                idle_timeout=config.gateway_idle_timeout,
                max_streams=config.gateway_max_streams,
                limits=ShareLimits(
                    requests_per_second=config.gateway_requests_per_second,
                    request_burst=config.gateway_request_burst,
                    max_streams=config.gateway_max_streams,
                    max_streams_per_peer=config.gateway_streams_per_peer,
                ),
                federation_paths=config.gateway_federation_paths,
                ca_export=config.gateway_ca_export_path,
            ),
            self.sessions,
            self.relay_client,
        )
        self._apply(self.core.handle_timer(now), None)

    @property
    def listen_addresses(self) -> list[tuple[str, str, int]]:
        return self.transports.listen_addresses

    def _peer_keys(self) -> set[bytes]:
        return {link.handshake.public_key for link in self.links.values() if link.handshake is not None}

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen, dial and serve as configured; a :class:`StartupError` that names
        the setting if something configured cannot be had."""
        self._sweeper = self.loop.call_later(SWEEP_INTERVAL_S, self._sweep)
        if any(uri.scheme == "quic" for uri in (*self.config.listen_uris(), *self.config.peer_uris())):
            engine = self.transports.quic_engine  # QuicEngineError, named, if it cannot be had
            log.info("QUIC engine of peerings", engine=engine.name.value, version=engine.version)
        for uri in self.config.listen_uris():
            with startup_step("listen", f"cannot listen on {uri}"):
                await self.transports.listen(uri)
        for uri in self.config.peer_uris():
            self.static_peers.add(str(uri), PeerSource.CONFIG)
        for text in self.saved_peers.load():
            self.static_peers.add(text, PeerSource.SAVED)
        if self.config.relay_enable or self.config.relays or self.gateway.serves_homeserver:
            # This configuration will use sessions: a QUIC library that cannot
            # serve them fails the start, not the first session.
            self.sessions.load()
        if self.config.relay_enable:
            with startup_step("relay_store", "cannot open the relay store"):
                await self._start_relay()
        self.relay_client.start()
        with startup_step("gateway_ca_export", "cannot export the gateway's CA certificate"):
            self.gateway.export_ca()
        with startup_step(
            "gateway_listen", f"cannot listen for the homeserver on {self.config.gateway_listen}"
        ):
            await self.gateway.start()
        if self.config.lan_discovery and self.config.lan_interfaces:
            await self.lan.start(list(self.config.lan_interfaces))

    async def _start_relay(self) -> None:
        # Loaded only by a node that serves as a relay.
        from relay.service import RelayLimits, RelayService  # noqa: PLC0415
        from relay.stores import open_store  # noqa: PLC0415

        store = open_store(self.config.relay_store_url)
        await store.open()
        self._relay_store = store
        limits = RelayLimits(
            max_expiry_s=self.config.relay_max_expiry,
            mailbox_max_count=self.config.relay_mailbox_max_count,
            mailbox_max_bytes=self.config.relay_mailbox_max_bytes,
            requests_per_second=self.config.relay_requests_per_second,
            burst=self.config.relay_request_burst,
        )
        self.relay_service = RelayService(self.identity, store, self.sessions, limits)
        self.sessions.listen(RELAY_ALPN, self.relay_service.handle)
        self._relay_sweeper = self.loop.create_task(self._sweep_relay())
        log.info("relay serving", store=self.config.relay_store_url.split("@")[-1])

    async def _sweep_relay(self) -> None:
        while self.relay_service is not None:
            await asyncio.sleep(600.0)
            await self.relay_service.sweep()

    def _sweep(self) -> None:
        self.admission.sweep()
        self._sweeper = self.loop.call_later(SWEEP_INTERVAL_S, self._sweep)

    async def stop(self) -> None:
        self._stopping = True
        self.gateway.close()
        await self.relay_client.stop()
        await self.sessions.close()
        if self._relay_sweeper is not None:
            self._relay_sweeper.cancel()
        if self._relay_store is not None:
            await self._relay_store.close()
        await self.static_peers.stop()
        self.transports.close()
        for link in [*self.links.values(), *self.admission.pending]:
            link.close("node stopping")
        self.lan.stop()
        for handle in (self._timer, self._sweeper):
            if handle is not None:
                handle.cancel()

    # ------------------------------------------------------------ static peers

    def add_static_peer(self, text: str, save: bool = False) -> PeerURI:
        """Keep a peer connected; with ``save``, also after a restart (OSError if
        the data directory cannot be written: then nothing was added)."""
        uri = parse_peer_uri(text)
        known = self.static_peers.get(str(uri))
        configured = str(uri) in {str(u) for u in self.config.peer_uris()}
        if save and not configured and (known is None or known.source is PeerSource.TEMPORARY):
            self.saved_peers.add(str(uri))  # first: if it cannot be saved, nothing changes
        return self.static_peers.add(str(uri), PeerSource.SAVED if save else PeerSource.TEMPORARY)

    def remove_static_peer(self, text: str) -> StaticPeer | None:
        """Stop keeping a peer connected and forget it if it was saved."""
        peer = self.static_peers.remove(text)
        if peer is not None:
            # A dial cancelled as it completed leaves a link no task owns: close
            # every peering made to this URI, established or still handshaking.
            uri = str(peer.uri)
            for link in [*self.links.values(), *self.admission.pending]:
                if link.outbound == uri and not link.closed:
                    link.close("peer removed by the operator")
            # Whatever it was last added as: a saved peer also in the configuration
            # is configured first at start, but must not come back from the file.
            self.saved_peers.remove(str(peer.uri))
        return peer

    # ------------------------------------------------------------ links (the LinkOwner protocol)

    def admit_handshake(self, link: PeerLink) -> bool:
        return self.admission.admit(link)

    def key_admissible(self, link: PeerLink, key: PublicKey) -> bool:
        return self.admission.key_admissible(link, key)

    def link_established(self, link: PeerLink) -> bool:
        self.admission.pending.discard(link)
        assert link.handshake is not None
        key = link.handshake.public_key
        refusal = self.admission.refusal(link, key)
        if refusal is None:
            duplicate = self._duplicate(link)
            if duplicate is not None and duplicate[0] == 0:
                # Not a fault of the peer's: no charge to its network, no hold-off.
                self._close_duplicate(link, self.links[duplicate[1]])
                return False
            try:
                port, outputs = self.core.add_peer(
                    key, link.link_type, self.loop.time(), extensions=link.handshake.extensions
                )
            except ValueError:
                refusal = ("all peer ports in use", "")
            else:
                link.port = port
                self.links[port] = link
                self.admission.remember(key)
                link.established.set_result(True)
                log.info("peer connected", port=port, key=key.hex(), remote=link.remote, uri=link.outbound)
                self._apply(outputs, None)
                old = self.links.get(duplicate[0]) if duplicate is not None else None
                if old is not None and not old.closed:
                    # The new peering is up first, so the node is never left without one.
                    self._close_duplicate(old, link)
                return True
        category, detail = refusal
        self.admission.refuse(link, category, detail)
        return False

    def _facts(self, link: PeerLink, ident: int) -> PeeringFacts:
        assert link.handshake is not None
        return PeeringFacts(
            ident,
            bytes(link.handshake.public_key),
            link.outbound is not None,
            link.kind,
            link.local_host,
            link.remote_host,
            bool(link.handshake.extensions & self.config.extension_bits & Extension.ONE_PEERING),
            self.lan.interface_of(link.local_host, link.local_scope) if link.kind == "multicast" else None,
        )

    def _duplicate(self, link: PeerLink) -> tuple[int, int] | None:
        """If ``link`` and an established peering are one too many (see
        :mod:`router.daemon.duplicates`): the ports of the one to close and the
        one to keep, 0 standing for ``link``; else None."""
        new = self._facts(link, 0)
        if not new.one_peering:
            return None
        # Only peerings to the same key can be duplicates: the facts of the others
        # (their interface asked of the kernel, for LAN peerings) are not needed.
        key = new.key
        established = [
            self._facts(other, port)
            for port, other in self.links.items()
            if not other.closed and other.handshake is not None and bytes(other.handshake.public_key) == key
        ]
        pair = duplicate_to_close(new, established, bytes(self.identity.public_key))
        return None if pair is None else (pair[0].ident, pair[1].ident)

    def _close_duplicate(self, closed: PeerLink, kept: PeerLink) -> None:
        self.counters[DUPLICATE_CLOSED] += 1
        log.info("duplicate peering closed", port=closed.port, kept=kept.port, remote=closed.remote)
        self.static_peers.covered(closed, kept)
        closed.close("duplicate peering: the one the lower key dialled stays")

    def frames_received(self, link: PeerLink, frames: list[bytes]) -> None:
        """Handle a peer's frames in slices of at most :data:`SLICE_S` of work: the
        rest waits, with reading from that peer paused, behind the other peers'
        input (so that no peer's flood holds back another's keepalives or traffic)."""
        if link.port == 0 or self.links.get(link.port) is not link:
            self.counters[UNHANDLED_FROM_CLOSED] += len(frames)
            return
        if link.backlog:  # still working through earlier frames: keep their order
            link.backlog.extend(frames)
            return
        rest = self._handle_slice(link, frames)
        if rest:
            link.backlog.extend(rest)
            link.pause_for_backlog()
            self.loop.call_soon(self._work_backlog, link)

    def _work_backlog(self, link: PeerLink) -> None:
        if link.closed or self.links.get(link.port) is not link:
            self.counters[UNHANDLED_FROM_CLOSED] += len(link.backlog)
            link.backlog.clear()
            return
        backlog = link.backlog
        frames = [backlog.popleft() for _ in range(min(len(backlog), BACKLOG_CHUNK))]
        rest = self._handle_slice(link, frames)
        backlog.extendleft(reversed(rest))
        if backlog:
            self.loop.call_soon(self._work_backlog, link)
        else:
            link.resume_after_backlog()

    def _handle_slice(self, link: PeerLink, frames: list[bytes]) -> list[bytes]:
        """Handle frames until the slice's time is up; those left over."""
        now = self.loop.time()
        core = self.core
        port = link.port
        apply = self._apply_outputs
        forward = self._forward_traffic
        deadline = time.perf_counter() + SLICE_S
        try:
            for i, frame in enumerate(frames):
                if is_traffic_frame(frame):
                    # The fast path: no output record for a frame passed on.
                    sent = core.forward_traffic(port, frame, now)
                    if sent is not None:
                        forward(sent[0], sent[1], link)
                    if core.has_outputs:
                        apply(core.take_outputs(), link)
                else:
                    apply(core.handle_frame(port, frame, now), link)
                if link.closed:
                    return []
                # Checked after every frame: one frame can cost milliseconds (a
                # deep announcement's signatures), and a clock read is ~50 ns.
                if time.perf_counter() >= deadline:
                    return frames[i + 1 :]
        finally:
            self._arm_timer()
        return []

    def link_lost(self, link: PeerLink) -> None:
        if link in self.admission.pending:
            self.admission.pending.discard(link)
            if not self._stopping:
                self.admission.failed(link)
        if link.queue_depth:
            # Queued for the peer but never written: nowhere to go now.
            self.counters[UNSENT_AT_CLOSE] += link.queue_depth
        if link.port and self.links.get(link.port) is link:
            del self.links[link.port]
            log.info("peer disconnected", port=link.port, reason=link.close_reason)
            self._apply(self.core.remove_peer(link.port, self.loop.time()), None)
        self._resume_sources(link, everyone=True)  # what they waited for is gone

    def link_writable(self, link: PeerLink) -> None:
        """``link`` took bytes: read again from each source paused for it whose
        frames queued there fell below half the pause bound.  (The transport
        draining is not enough: a flood's frames can stand in the fair queue by
        the megabyte behind it, and resuming its source then only feeds the
        byte bound's shedding, and reads the floods unevenly.)"""
        self._resume_sources(link, everyone=False)

    def _resume_sources(self, link: PeerLink, *, everyone: bool) -> None:
        for port in list(link.waiting_sources):
            if not everyone and link.traffic.port_size(port) >= link.pause_bytes // 2:
                continue
            link.waiting_sources.discard(port)
            source = self.links.get(port)
            if source is not None:
                source.resume_reading()

    # ------------------------------------------------------------ outputs

    def _apply(self, outputs: list[Output], source: PeerLink | None) -> None:
        self._apply_outputs(outputs, source)
        self._arm_timer()

    def _apply_outputs(self, outputs: list[Output], source: PeerLink | None) -> None:
        """Carry out the core's outputs; traffic sent is charged to ``source``, the
        link whose frame caused it (None: this node's own)."""
        for out in outputs:
            if isinstance(out, SendFrame):
                if out.traffic:
                    self._forward_traffic(out.port, out.data, source)
                    continue
                link = self.links.get(out.port)
                if link is None or link.closed:
                    self.counters[SENT_TO_CLOSED] += 1
                else:
                    link.send_proto(out.data)
            elif isinstance(out, Deliver):
                self.delivery.deliver(out)
            elif isinstance(out, ClosePeer):
                link = self.links.pop(out.port, None)
                if link is not None:
                    log.warning("closing peer", port=out.port, reason=out.reason)
                    if out.cause is not CloseCause.SILENT:
                        self.static_peers.closed_for_fault(link)  # no prompt redial
                    link.close(out.reason)
                    if out.cause is CloseCause.BAD_SIGNATURE:
                        self.admission.hold_off(link)
            elif isinstance(out, ParentChanged):
                if not self._stopping:  # peerings closing on the way down are not news
                    log.info("parent changed", port=out.port)
            elif isinstance(out, RootChanged):
                # Only a new root key is news; sequences change as the root refreshes.
                if out.root_key != self._logged_root:
                    self._logged_root = out.root_key
                    self.relay_client.moved()
                    if not self._stopping:
                        log.info(
                            "root changed", root=out.root_key.hex(), coords=short_coordinates(out.coordinates)
                        )
                else:
                    log.debug(
                        "root sequence", sequence=out.root_sequence, coords=short_coordinates(out.coordinates)
                    )
            elif isinstance(out, DescendingChanged):
                log.debug("descending changed", key=out.key.hex() if out.key else None)
                self.relay_client.moved()
            elif isinstance(out, BroadcastReceived):
                self.counters["wakeup broadcasts seen"] += 1

    def _forward_traffic(self, port: int, data: bytes, source: PeerLink | None) -> None:
        """Queue a traffic frame for the peer on ``port``, charged to ``source``
        (the link whose frame it is; None: this node's own)."""
        link = self.links.get(port)
        if link is None or link.closed:
            # (A link closed here stays in the table until its transport says it
            # is gone; whatever were queued on it meanwhile would vanish.)
            self.counters[SENT_TO_CLOSED] += 1
            return
        link.send_traffic(source.port if source is not None else LOCAL_PORT, data)
        if source is not None and link.traffic.port_size(source.port) >= link.pause_bytes:
            # Backpressure, per source: stop reading from a peer whose frames
            # for this one stand past the bound, until the queue is written out.
            # A source with less waiting is still read, so each gets its share.
            link.waiting_sources.add(source.port)
            source.pause_reading()

    def _arm_timer(self) -> None:
        deadline = self.core.next_deadline()
        if deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        self._apply(self.core.handle_timer(self.loop.time()), None)

    # ------------------------------------------------------------ the local application

    def send(self, destination: bytes, payload: bytes) -> None:
        """Send ``payload`` to the node with key ``destination``, as our own traffic."""
        self._apply(self.core.send_traffic(destination, payload, self.loop.time()), None)

    def send_by_key(self, destination: bytes, payload: bytes) -> None:
        """Send to whichever node is closest to ``destination`` now (not to where
        the key was last seen): for relay records of nodes that may be away."""
        self._apply(self.core.send_traffic(destination, payload, self.loop.time(), by_key=True), None)

    async def ping(self, key: PublicKey, timeout: float) -> float | None:
        """Round-trip time in seconds to the node with ``key``, or None on timeout."""
        return await self.delivery.ping(key, timeout)
