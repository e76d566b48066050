"""The node runtime: asyncio around one :class:`~router.routing.core.RouterCore`.

It owns the links, their queues and one timer that follows the core's
``next_deadline()``; it moves bytes and never decides where a frame goes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import ssl
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from pathlib import Path

import structlog
from aioquic.asyncio.server import QuicServer
from aioquic.asyncio.server import serve as quic_serve
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import Server as WebSocketServer
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import WebSocketException
from websockets.http11 import Request, Response

from relay.client import RelayClient, RelayClientSettings
from relay.protocol import ALPN as RELAY_ALPN
from relay.records import PREFIX as RECORD_PREFIX
from relay.service import RelayLimits, RelayService
from relay.stores import open_store
from relay.stores.base import Store
from router.daemon.config import NodeConfig, parse_host_port
from router.daemon.holdoff import HoldOffs
from router.gateway.service import Gateway, GatewaySettings
from router.links.multicast import Discovery
from router.links.owner import LinkSettings
from router.links.quic import QuicPeerProtocol
from router.links.quic import configuration as quic_configuration
from router.links.quic import dial as quic_dial
from router.links.tcp import PeerLink
from router.links.tls import ALPN as TLS_ALPN
from router.links.tls import (
    WEBSOCKET_ALPN,
    certificate_files,
    client_context,
    peer_certificate_key,
    server_context,
)
from router.links.uri import WEBSOCKET_SCHEMES, PeerURI, parse_peer_uri
from router.links.websocket import MAX_MESSAGE_BYTES, WebSocketTransport
from router.routing.constants import LINK_TYPE_MULTICAST
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
from router.sessions.endpoint import Limits as SessionLimits
from router.sessions.runtime import Sessions, stop_tasks
from router.wire.handshake import build_handshake
from router.wire.keys import Identity, PublicKey

SESSION_PROTOCOLS = ["matrix", RELAY_ALPN]
"""Application protocols (ALPN) that sessions with this node may speak."""
MAX_DISCOVERY_DIALS = 16
MAX_RATE_BUCKETS = 65536
MAX_PENDING_PER_NETWORK = 16
"""Handshakes in progress from one source network (/24 or /64) at once."""
HANDSHAKE_BUDGET_WINDOW_S = 60.0
HANDSHAKE_LOG_INTERVAL_S = 60.0
"""At most one log line per source address and reason in this time."""
MAX_KNOWN_KEYS = 1024
SLICE_S = 0.005
"""The most time one peer's frames get before the other peers' input is read."""
BACKLOG_CHUNK = 1024
RECONNECT_MIN_S = 5.0  # reference connection manager: first retry
RECONNECT_MAX_S = 3600.0  # and the longest wait
CONNECT_TIMEOUT_S = 10.0
PING_PREFIX = b"\x00pinewood-ping\x00"
PONG_PREFIX = b"\x00pinewood-pong\x00"

log = structlog.get_logger("pinewood")


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


@dataclass(slots=True)
class StaticPeer:
    uri: PeerURI
    task: asyncio.Task[None] | None = None
    link: PeerLink | None = None
    attempts: int = 0
    last_error: str = ""


class Node:
    """A running Pinewood node."""

    def __init__(self, config: NodeConfig, identity: Identity) -> None:
        self.config = config
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
            ),
        )
        self.started_at = now
        self.max_pending = max(64, 2 * config.max_peers)
        self.handshake_bytes = build_handshake(identity)
        self.link_settings = LinkSettings(config.handshake_timeout, config.traffic_queue_frames)
        self.links: dict[int, PeerLink] = {}
        self.pending: set[PeerLink] = set()
        self.static_peers: dict[str, StaticPeer] = {}
        self.servers: list[asyncio.Server] = []
        self.counters: Counter[str] = Counter()
        self._ping_waiters: dict[bytes, tuple[bytes, asyncio.Future[float]]] = {}
        self._handshake_times: dict[str, deque[float]] = {}
        self.held_keys = HoldOffs()
        self._known_keys: OrderedDict[bytes, None] = OrderedDict()
        """Keys that have held a peering with us (most recent last): a restricted
        network's links may still bring them in."""
        self._problem_logged: dict[tuple[str, str], float] = {}
        self.held_addresses = HoldOffs()
        self._source_link: PeerLink | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self.listen_addresses: list[tuple[str, str, int]] = []
        self._tls_files: tuple[Path, Path] | None = None
        self._ws_servers: list[WebSocketServer] = []
        self._quic_servers: list[QuicServer] = []
        self.discovery: Discovery | None = None
        self._dialling: set[tuple[str, int, int]] = set()
        self._dialling_keys: set[bytes] = set()
        self._ws_tasks: set[asyncio.Task[None]] = set()
        self._allowed = frozenset(bytes.fromhex(k) for k in config.allow_keys)
        self._logged_root: bytes = b""
        self._sweeper: asyncio.TimerHandle | None = None
        self._stopping = False
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
            ),
            is_highest=lambda: self.core.root()[0] == self.core.key,
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
            ),
            self.sessions,
            self.relay_client,
        )
        self._apply(self.core.handle_timer(now))

    # ------------------------------------------------------------ lifecycle

    def _tls(self, server: bool, alpn: str = TLS_ALPN) -> ssl.SSLContext:
        if self._tls_files is None:
            self._tls_files = certificate_files(self.identity, self.config.data_path / "tls")
        make = server_context if server else client_context
        return make(*self._tls_files, alpn=alpn)

    async def start(self) -> None:
        self._sweeper = self.loop.call_later(60.0, self._sweep_rate_table)
        for uri in self.config.listen_uris():
            scheme = uri.scheme
            if scheme == "quic":
                quic_server = await quic_serve(
                    uri.host,
                    uri.port,
                    configuration=quic_configuration(self.identity, client=False),
                    create_protocol=partial(QuicPeerProtocol, node=self, outbound=None),
                )
                self._quic_servers.append(quic_server)
                quic_transport = quic_server._transport  # aioquic keeps it private
                assert quic_transport is not None
                address = quic_transport.get_extra_info("sockname")
                self.listen_addresses.append((scheme, address[0], address[1]))
                log.info("listening", address=f"quic://{address[0]}:{address[1]}")
                continue
            if scheme in WEBSOCKET_SCHEMES:
                ws_server = await ws_serve(
                    partial(self._serve_websocket, scheme=scheme),
                    uri.host,
                    uri.port,
                    process_request=partial(self._websocket_path, path=uri.path),
                    max_size=MAX_MESSAGE_BYTES,
                    compression=None,
                    ssl=self._tls(server=True, alpn=WEBSOCKET_ALPN) if scheme == "wss" else None,
                )
                self._ws_servers.append(ws_server)
                for sock in ws_server.sockets:
                    address = sock.getsockname()
                    self.listen_addresses.append((scheme, address[0], address[1]))
                    log.info("listening", address=f"{scheme}://{address[0]}:{address[1]}")
                continue
            server = await self.loop.create_server(
                lambda scheme=scheme: PeerLink(self, None, scheme=scheme),
                uri.host,
                uri.port,
                ssl=self._tls(server=True) if scheme == "tls" else None,
                ssl_handshake_timeout=self.config.handshake_timeout if scheme == "tls" else None,
            )
            self.servers.append(server)
            for sock in server.sockets:
                address = sock.getsockname()
                self.listen_addresses.append((scheme, address[0], address[1]))
                log.info("listening", address=f"{scheme}://{address[0]}:{address[1]}")
        for uri in self.config.peer_uris():
            self.add_static_peer(str(uri))
        if self.config.relay_enable:
            await self._start_relay()
        self.relay_client.start()
        await self.gateway.start()
        if self.config.lan_discovery and self.config.lan_interfaces:
            await self._start_discovery()

    async def _start_relay(self) -> None:
        store = open_store(self.config.relay_store_url)
        await store.open()
        self._relay_store = store
        limits = RelayLimits(
            max_expiry_s=self.config.relay_max_expiry,
            mailbox_max_count=self.config.relay_mailbox_max_count,
            mailbox_max_bytes=self.config.relay_mailbox_max_bytes,
        )
        self.relay_service = RelayService(self.identity, store, self.sessions, limits)
        self.sessions.listen(RELAY_ALPN, self.relay_service.handle)
        self._relay_sweeper = self.loop.create_task(self._sweep_relay())
        log.info("relay serving", store=self.config.relay_store_url.split("@")[-1])

    async def _sweep_relay(self) -> None:
        while self.relay_service is not None:
            await asyncio.sleep(600.0)
            await self.relay_service.sweep()

    async def _start_discovery(self) -> None:
        """A TCP listener for discovered peers, and beacons on the allowed interfaces."""
        # One port for both families: the beacons carry only one.
        listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        listener.bind(("::", 0))
        server = await self.loop.create_server(
            lambda: PeerLink(self, None, link_type=LINK_TYPE_MULTICAST), sock=listener
        )
        self.servers.append(server)
        port = server.sockets[0].getsockname()[1]
        self.discovery = Discovery(self.identity.public_key, port, self._heard)
        await self.discovery.start(list(self.config.lan_interfaces))

    def _heard(self, key: bytes, port: int, host: str, scope: int) -> None:
        """A beacon: dial its sender unless it is us or we already peer with it."""
        target = (host, port, scope)
        if key == self.identity.public_key or target in self._dialling or key in self._dialling_keys:
            return  # (a node beaconing over IPv6 and IPv4 is dialled once at a time)
        if any(
            link.handshake is not None and link.handshake.public_key == key for link in self.links.values()
        ):
            return
        if len(self._dialling) >= MAX_DISCOVERY_DIALS:
            return
        self._dialling.add(target)
        self._dialling_keys.add(key)
        task = self.loop.create_task(self._dial_discovered(key, host, port, scope))

        def done(_: object) -> None:
            self._dialling.discard(target)
            self._dialling_keys.discard(key)

        task.add_done_callback(done)

    async def _dial_discovered(self, key: bytes, host: str, port: int, scope: int) -> None:
        ipv6 = ":" in host
        sock = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            if ipv6:
                # The zone goes in by name: uvloop drops a numeric scope id from the tuple.
                zoned = f"{host}%{socket.if_indextoname(scope)}"
                address: tuple[str, int] | tuple[str, int, int, int] = (zoned, port, 0, 0)
                uri = f"tcp://[{host}%{scope}]:{port}"
            else:
                address, uri = (host, port), f"tcp://{host}:{port}"
            await asyncio.wait_for(self.loop.sock_connect(sock, address), CONNECT_TIMEOUT_S)
            _, link = await self.loop.create_connection(
                lambda: PeerLink(self, uri, link_type=LINK_TYPE_MULTICAST, expected_key=key),
                sock=sock,
            )
            if await link.established:
                self.counters["LAN peers discovered"] += 1
        except (OSError, TimeoutError) as exc:
            sock.close()
            log.debug("discovered peer unreachable", host=host, port=port, error=str(exc))

    async def stop(self) -> None:
        self._stopping = True
        self.gateway.close()
        await self.relay_client.stop()
        await self.sessions.close()
        if self._relay_sweeper is not None:
            self._relay_sweeper.cancel()
        if self._relay_store is not None:
            await self._relay_store.close()
        await stop_tasks([p.task for p in self.static_peers.values() if p.task is not None])
        for server in self.servers:
            server.close()
        for ws_server in self._ws_servers:
            ws_server.close()
        for quic_server in self._quic_servers:
            quic_server.close()
        for link in [*self.links.values(), *self.pending]:
            link.close("node stopping")
        if self.discovery is not None:
            self.discovery.stop()
        for handle in (self._timer, self._sweeper):
            if handle is not None:
                handle.cancel()

    # ------------------------------------------------------------ static peers

    def add_static_peer(self, text: str) -> PeerURI:
        uri = parse_peer_uri(text)
        key = str(uri)
        if key in self.static_peers:
            return uri
        peer = StaticPeer(uri)
        self.static_peers[key] = peer
        peer.task = self.loop.create_task(self._keep_connected(peer))
        return uri

    def remove_static_peer(self, text: str) -> bool:
        peer = self.static_peers.pop(str(parse_peer_uri(text)), None)
        if peer is None:
            return False
        if peer.task is not None:
            peer.task.cancel()
        if peer.link is not None:
            peer.link.close("peer removed by the operator")
        return True

    async def _dial(self, uri: PeerURI) -> PeerLink:
        """Open a link to ``uri``; its handshake then runs as on any link."""
        if uri.scheme in WEBSOCKET_SCHEMES:
            secure = uri.scheme == "wss"
            connection = await ws_connect(
                uri.websocket_url,
                max_size=MAX_MESSAGE_BYTES,
                compression=None,
                open_timeout=CONNECT_TIMEOUT_S + (self.config.handshake_timeout if secure else 0.0),
                ssl=self._tls(server=False, alpn=WEBSOCKET_ALPN) if secure else None,
            )
            link = PeerLink(self, str(uri), scheme=uri.scheme, expected_key=uri.key)
            if secure:
                link.certificate_key = peer_certificate_key(connection.transport.get_extra_info("ssl_object"))
            self._ws_tasks.add(task := self.loop.create_task(WebSocketTransport(connection, link).run()))
            task.add_done_callback(self._ws_tasks.discard)
            return link
        if uri.scheme == "quic":
            return await quic_dial(self, uri.host, uri.port, str(uri), CONNECT_TIMEOUT_S, uri.key)
        tls = uri.scheme == "tls"
        _, link = await asyncio.wait_for(
            self.loop.create_connection(
                lambda: PeerLink(self, str(uri), scheme=uri.scheme, expected_key=uri.key),
                uri.host,
                uri.port,
                ssl=self._tls(server=False) if tls else None,
                ssl_handshake_timeout=self.config.handshake_timeout if tls else None,
            ),
            CONNECT_TIMEOUT_S + (self.config.handshake_timeout if tls else 0.0),
        )
        return link

    def _websocket_path(self, connection: ServerConnection, request: Request, path: str) -> Response | None:
        """Upgrade only on the listener's own path, if it names one (without a
        path, any path, as the reference's daemon does)."""
        if not path or request.path.partition("?")[0] == path:
            return None
        self.counters["websocket upgrades refused: wrong path"] += 1
        return connection.respond(HTTPStatus.NOT_FOUND, "no peering on this path\n")

    async def _serve_websocket(self, connection: ServerConnection, scheme: str) -> None:
        await WebSocketTransport(connection, PeerLink(self, None, scheme=scheme)).run()

    async def _keep_connected(self, peer: StaticPeer) -> None:
        backoff = RECONNECT_MIN_S
        while not self._stopping:
            peer.attempts += 1
            try:
                link = await self._dial(peer.uri)
                peer.link = link
                if await link.established:
                    backoff = RECONNECT_MIN_S
                    peer.last_error = ""
                    await link.lost
                peer.last_error = link.close_reason
            except (OSError, TimeoutError, WebSocketException) as exc:
                peer.last_error = str(exc) or type(exc).__name__
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a task that dies silently would be worse
                log.exception("unexpected error dialling a peer", uri=str(peer.uri))
                peer.last_error = f"{type(exc).__name__}: {exc}"
            peer.link = None
            if peer.last_error == "connected to ourselves":
                peer.last_error = "gave up: this address is our own node"
                log.warning("static peer is this node; not retrying", uri=str(peer.uri))
                return
            log.info(
                "peer unreachable, will retry", uri=str(peer.uri), error=peer.last_error, retry_in_s=backoff
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_S)

    # ------------------------------------------------------------ links

    def admit_handshake(self, link: PeerLink) -> bool:
        """Limit handshakes in progress, in total and per source network, before
        doing any cryptography.  A network that has caused too many failed,
        timed-out or refused handshakes in the last minute is not refused: its
        links are restricted to keys this node knows (:meth:`key_admissible`)."""
        if len(self.pending) >= self.max_pending:
            self._refuse_handshake(link, "too many pending", "too many handshakes in progress")
            return False
        if link.outbound is None:
            host = remote_host(link.remote)
            now = self.loop.time()
            if self.held_addresses.remaining(host, now):
                self._refuse_handshake(link, "address held off", "address held off after a bad signature")
                return False
            bucket = address_bucket(host)
            if sum(1 for p in self.pending if p.network == bucket) >= MAX_PENDING_PER_NETWORK:
                self._refuse_handshake(link, "too many pending from one network", "")
                return False
            link.network = bucket
            failures = self._handshake_times.get(bucket)
            if failures is not None:
                while failures and now - failures[0] > HANDSHAKE_BUDGET_WINDOW_S:
                    failures.popleft()
                if len(failures) >= self.config.handshakes_per_minute:
                    link.restricted = True
                    self.counters["handshakes restricted to known keys"] += 1
        self.pending.add(link)
        return True

    def key_admissible(self, link: PeerLink, key: PublicKey) -> bool:
        """Whether a restricted link's handshake, claiming ``key``, is worth
        verifying: only for the operator's keys (``allow_keys``, pinned static
        peers) and keys that have held a peering with this node before."""
        if not link.restricted or key in self._allowed or key in self._known_keys:
            return True
        if any(peer.uri.key == key for peer in self.static_peers.values()):
            return True
        self._refuse_handshake(link, "network over its failure budget", "")
        return False

    def _refuse_handshake(self, link: PeerLink, category: str, detail: str) -> None:
        """Count, log (bounded) and charge a refusal, and close the link."""
        self.counters[f"handshakes refused: {category}"] += 1
        self._log_handshake_problem(link, "handshake refused", category)
        self._charge(link)
        link.close(f"{category}: {detail}" if detail else category)

    def _charge(self, link: PeerLink) -> None:
        """An inbound handshake cost us and came to nothing: charge its network."""
        if link.outbound is not None or link.charged:
            return
        link.charged = True
        bucket = link.network or address_bucket(remote_host(link.remote))
        failures = self._handshake_times.get(bucket)
        if failures is None:
            if len(self._handshake_times) >= MAX_RATE_BUCKETS:
                self.counters["handshake failures not charged: rate table full"] += 1
                return
            failures = self._handshake_times[bucket] = deque(maxlen=self.config.handshakes_per_minute)
        failures.append(self.loop.time())

    def _log_handshake_problem(self, link: PeerLink, event: str, category: str) -> None:
        """One log line per source address and category a minute, however many there are."""
        host = remote_host(link.remote)
        now = self.loop.time()
        last = self._problem_logged.get((host, category))
        if last is not None and now - last < HANDSHAKE_LOG_INTERVAL_S:
            return
        if last is None and len(self._problem_logged) >= MAX_RATE_BUCKETS:
            return
        self._problem_logged[(host, category)] = now
        log.warning(event, address=host, reason=category, uri=link.outbound)

    def _handshake_failed(self, link: PeerLink) -> None:
        """A link closed before its handshake made it a peering."""
        reason = link.close_reason or ""
        if reason.startswith("bad handshake"):
            category = "bad handshake"
        elif reason.startswith("no handshake"):
            category = "timed out"
        else:
            category = "closed before the handshake"
        self.counters[f"handshakes failed: {category}"] += 1
        self._log_handshake_problem(link, "handshake failed", category)
        self._charge(link)

    def _hold_off(self, link: PeerLink) -> None:
        """Refuse a peer that sent a forged frame, by key and by address, for a while."""
        now = self.loop.time()
        host = remote_host(link.remote)
        key = link.handshake.public_key.hex() if link.handshake is not None else ""
        seconds = self.held_keys.strike(key, now) if key else 0.0
        self.held_addresses.strike(host, now)
        self.counters["peers held off: bad signature"] += 1
        log.warning("peer held off after a bad signature", key=key, address=host, seconds=seconds)

    def _sweep_rate_table(self) -> None:
        now = self.loop.time()
        self.held_keys.sweep(now)
        self.held_addresses.sweep(now)
        for bucket in [
            b for b, t in self._handshake_times.items() if not t or now - t[-1] > HANDSHAKE_BUDGET_WINDOW_S
        ]:
            del self._handshake_times[bucket]
        for source in [s for s, t in self._problem_logged.items() if now - t > HANDSHAKE_LOG_INTERVAL_S]:
            del self._problem_logged[source]
        self._sweeper = self.loop.call_later(60.0, self._sweep_rate_table)

    def _refusal(self, link: PeerLink, key: PublicKey) -> tuple[str, str] | None:
        """Why a link whose handshake proved ``key`` may not become a peering, if
        it may not: a fixed category (for counters) and the detail (for logs)."""
        expected = link.expected_key
        if key == self.identity.public_key:
            return "connected to ourselves", ""
        if held := self.held_keys.remaining(key.hex(), self.loop.time()):
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
            if self._allowed and key not in self._allowed:
                return "key not in allow_keys", ""
            if self._inbound_count() >= self.config.max_peers - len(self.static_peers):
                # Slots for the operator's own peers are kept free of strangers.
                return "no free inbound peer slots", ""
        return None

    def link_established(self, link: PeerLink) -> bool:
        self.pending.discard(link)
        assert link.handshake is not None
        key = link.handshake.public_key
        refusal = self._refusal(link, key)
        if refusal is None:
            try:
                port, outputs = self.core.add_peer(key, link.link_type, self.loop.time())
            except ValueError:
                refusal = ("all peer ports in use", "")
            else:
                link.port = port
                self.links[port] = link
                self._known_keys[key] = None
                self._known_keys.move_to_end(key)
                if len(self._known_keys) > MAX_KNOWN_KEYS:
                    self._known_keys.popitem(last=False)
                link.established.set_result(True)
                log.info("peer connected", port=port, key=key.hex(), remote=link.remote, uri=link.outbound)
                self._apply(outputs)
                return True
        category, detail = refusal
        self._refuse_handshake(link, category, detail)
        return False

    def _inbound_count(self) -> int:
        return sum(1 for link in self.links.values() if link.outbound is None)

    def frames_received(self, link: PeerLink, frames: list[bytes]) -> None:
        """Handle a peer's frames in slices of at most :data:`SLICE_S` of work: the
        rest waits, with reading from that peer paused, behind the other peers'
        input (so that no peer's flood holds back another's keepalives or traffic)."""
        if link.port == 0 or self.links.get(link.port) is not link:
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
        self._source_link = link
        port = link.port
        apply = self._apply_outputs
        deadline = time.perf_counter() + SLICE_S
        try:
            for i, frame in enumerate(frames):
                apply(core.handle_frame(port, frame, now))
                if link.closed:
                    return []
                # Checked after every frame: one frame can cost milliseconds (a
                # deep announcement's signatures), and a clock read is ~50 ns.
                if time.perf_counter() >= deadline:
                    return frames[i + 1 :]
        finally:
            self._source_link = None
            self._arm_timer()
        return []

    def link_lost(self, link: PeerLink) -> None:
        if link in self.pending:
            self.pending.discard(link)
            if not self._stopping:
                self._handshake_failed(link)
        if link.port and self.links.get(link.port) is link:
            del self.links[link.port]
            log.info("peer disconnected", port=link.port, reason=link.close_reason)
            self._apply(self.core.remove_peer(link.port, self.loop.time()))
        self.link_writable(link)

    def link_writable(self, link: PeerLink) -> None:
        for port in link.waiting_sources:
            source = self.links.get(port)
            if source is not None:
                source.resume_reading()
        link.waiting_sources.clear()

    # ------------------------------------------------------------ outputs

    def _apply(self, outputs: list[Output]) -> None:
        self._apply_outputs(outputs)
        self._arm_timer()

    def _apply_outputs(self, outputs: list[Output]) -> None:
        for out in outputs:
            if isinstance(out, SendFrame):
                link = self.links.get(out.port)
                if link is None:
                    self.counters["sent to a closed link"] += 1
                elif out.traffic:
                    source = self._source_link
                    link.send_traffic(source.port if source is not None else LOCAL_PORT, out.data)
                    if source is not None and (
                        link.writing_paused or link.traffic.frames >= link.pause_depth
                    ):
                        # Backpressure: stop reading from the peer feeding this
                        # one until its queue has been written out.
                        link.waiting_sources.add(source.port)
                        source.pause_reading()
                else:
                    link.send_proto(out.data)
            elif isinstance(out, Deliver):
                self._deliver(out)
            elif isinstance(out, ClosePeer):
                link = self.links.pop(out.port, None)
                if link is not None:
                    log.warning("closing peer", port=out.port, reason=out.reason)
                    link.close(out.reason)
                    if out.cause is CloseCause.BAD_SIGNATURE:
                        self._hold_off(link)
            elif isinstance(out, ParentChanged):
                log.info("parent changed", port=out.port)
            elif isinstance(out, RootChanged):
                # Only a new root key is news; sequences change as the root refreshes.
                if out.root_key != self._logged_root:
                    self._logged_root = out.root_key
                    self.relay_client.moved()
                    log.info("root changed", root=out.root_key.hex(), coords=out.coordinates)
                else:
                    log.debug("root sequence", sequence=out.root_sequence, coords=out.coordinates)
            elif isinstance(out, DescendingChanged):
                log.debug("descending changed", key=out.key.hex() if out.key else None)
                self.relay_client.moved()
            elif isinstance(out, BroadcastReceived):
                self.counters["wakeup broadcasts seen"] += 1

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
        self._apply(self.core.handle_timer(self.loop.time()))

    # ------------------------------------------------------------ the local application

    def send(self, destination: bytes, payload: bytes) -> None:
        self._apply(self.core.send_traffic(destination, payload, self.loop.time()))

    def send_by_key(self, destination: bytes, payload: bytes) -> None:
        """Send to whichever node is closest to ``destination`` now (not to where
        the key was last seen): for relay records of nodes that may be away."""
        self._apply(self.core.send_traffic(destination, payload, self.loop.time(), by_key=True))

    def _deliver(self, out: Deliver) -> None:
        if out.payload.startswith(RECORD_PREFIX):
            # Relay records: also for keys we stand in for while they are away.
            self.relay_client.datagram(bytes(out.source_key), bytes(out.destination_key), bytes(out.payload))
            return
        if out.destination_key != self.identity.public_key:
            self.counters["frames for absent keys"] += 1
            return
        payload = out.payload
        if payload.startswith(PING_PREFIX) and len(payload) == len(PING_PREFIX) + 8:
            # Answered as our own traffic, not charged to the link it came in on.
            source, self._source_link = self._source_link, None
            try:
                self.send(out.source_key, PONG_PREFIX + payload[len(PING_PREFIX) :])
            finally:
                self._source_link = source
            return
        if payload.startswith(PONG_PREFIX):
            nonce = payload[len(PONG_PREFIX) :]
            pending = self._ping_waiters.get(nonce)
            if pending is not None and pending[0] == out.source_key and not pending[1].done():
                del self._ping_waiters[nonce]
                pending[1].set_result(time.perf_counter())
            return
        self.counters["frames delivered to the application"] += 1
        if payload and payload[0] & 0x40:  # QUIC's fixed bit: a session datagram
            self.sessions.datagram(bytes(out.source_key), bytes(payload))
        else:
            self.counters["overlay payloads for no application"] += 1

    async def ping(self, key: PublicKey, timeout: float) -> float | None:
        """Round-trip time in seconds to the node with ``key``, or None on timeout."""
        nonce = os.urandom(8)
        waiter: asyncio.Future[float] = self.loop.create_future()
        self._ping_waiters[nonce] = (bytes(key), waiter)
        started = time.perf_counter()  # uvloop's loop clock has millisecond resolution
        self.send(key, PING_PREFIX + nonce)
        try:
            answered = await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            return None
        finally:
            self._ping_waiters.pop(nonce, None)
        return answered - started
