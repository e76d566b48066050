"""The node's listeners for every kind of peering, and dialling out by URI.

TCP, TLS, QUIC, WebSocket and WebSocket over TLS all end in a
:class:`~router.links.peer.PeerLink` handed to the link owner (the node), which
runs the same handshake and frames on each.  TLS contexts are made from the
node's key on first use.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import Counter
from functools import partial
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING

from router.links.owner import LinkOwner
from router.links.peer import PeerLink
from router.links.uri import WEBSOCKET_SCHEMES, PeerURI
from router.logs import get_logger
from router.quic.errors import QuicEngineError
from router.routing.constants import LINK_TYPE_MULTICAST
from router.wire.keys import Identity

if TYPE_CHECKING:
    from websockets.asyncio.server import Server as WebSocketServer
    from websockets.asyncio.server import ServerConnection
    from websockets.http11 import Request, Response

    from router.quic.engines import PeeringEngine, PeeringListener

# TLS (and its certificates), WebSocket and QUIC are loaded the first time a
# peering of that kind is dialled or listened for: a node on plain TCP does
# without them.

CONNECT_TIMEOUT_S = 10.0

log = get_logger("pinewood")


class Transports:
    """Listeners and dialling for one node."""

    def __init__(
        self,
        owner: LinkOwner,
        identity: Identity,
        tls_dir: Path,
        handshake_timeout: float,
        counters: Counter[str],
        quic_engine: str,
    ) -> None:
        self.owner = owner
        self.quic_engine_name = quic_engine
        self._quic_engine: PeeringEngine | None = None
        self.identity = identity
        self.tls_dir = tls_dir
        self.handshake_timeout = handshake_timeout
        self.counters = counters
        self.listen_addresses: list[tuple[str, str, int]] = []
        self._servers: list[asyncio.Server] = []
        self._ws_servers: list[WebSocketServer] = []
        self._quic_servers: list[PeeringListener] = []
        self._ws_tasks: set[asyncio.Task[None]] = set()
        self._tls_files: tuple[Path, Path] | None = None

    @property
    def quic_engine(self) -> PeeringEngine:
        """The engine of QUIC peerings, looked up (and checked) on first use;
        QuicEngineError if it is not installed or lacks something."""
        if self._quic_engine is None:
            from router.quic.engines import peering_engine  # noqa: PLC0415

            self._quic_engine = peering_engine(self.quic_engine_name)
        return self._quic_engine

    def _tls(self, server: bool, websocket: bool = False) -> ssl.SSLContext:
        from router.links import tls  # noqa: PLC0415

        if self._tls_files is None:
            self._tls_files = tls.certificate_files(self.identity, self.tls_dir)
        make = tls.server_context if server else tls.client_context
        return make(*self._tls_files, alpn=tls.WEBSOCKET_ALPN if websocket else tls.ALPN)

    def _listening(self, scheme: str, address: tuple[str, int]) -> None:
        self.listen_addresses.append((scheme, address[0], address[1]))
        log.info("listening", address=f"{scheme}://{address[0]}:{address[1]}")

    async def listen(self, uri: PeerURI) -> None:
        """Listen for peerings at ``uri``."""
        loop = asyncio.get_running_loop()
        scheme = uri.scheme
        if scheme == "quic":
            from router.links.quic import serve as quic_serve  # noqa: PLC0415

            quic_server = await quic_serve(self.quic_engine, self.owner, uri.host, uri.port)
            self._quic_servers.append(quic_server)
            self._listening(scheme, quic_server.sockname())
            return
        if scheme in WEBSOCKET_SCHEMES:
            from websockets.asyncio.server import serve as ws_serve  # noqa: PLC0415

            from router.links.websocket import MAX_MESSAGE_BYTES  # noqa: PLC0415

            ws_server = await ws_serve(
                partial(self._serve_websocket, scheme=scheme),
                uri.host,
                uri.port,
                process_request=partial(self._websocket_path, path=uri.path),
                max_size=MAX_MESSAGE_BYTES,
                compression=None,
                ssl=self._tls(server=True, websocket=True) if scheme == "wss" else None,
            )
            self._ws_servers.append(ws_server)
            for sock in ws_server.sockets:
                self._listening(scheme, sock.getsockname())
            return
        server = await loop.create_server(
            lambda: PeerLink(self.owner, None, scheme=scheme),
            uri.host,
            uri.port,
            ssl=self._tls(server=True) if scheme == "tls" else None,
            ssl_handshake_timeout=self.handshake_timeout if scheme == "tls" else None,
        )
        self._servers.append(server)
        for sock in server.sockets:
            self._listening(scheme, sock.getsockname())

    async def listen_for_lan(self) -> int:
        """A TCP listener, on every address of both families, for peers found on
        the LAN (their links have the multicast type); its port."""
        # One port for both families: the beacons carry only one.
        listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        listener.bind(("::", 0))
        server = await asyncio.get_running_loop().create_server(
            lambda: PeerLink(self.owner, None, link_type=LINK_TYPE_MULTICAST), sock=listener
        )
        self._servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    async def dial(self, uri: PeerURI) -> PeerLink:
        """Open a link to ``uri``; its handshake then runs as on any link."""
        loop = asyncio.get_running_loop()
        if uri.scheme in WEBSOCKET_SCHEMES:
            from websockets.asyncio.client import connect as ws_connect  # noqa: PLC0415
            from websockets.exceptions import WebSocketException  # noqa: PLC0415

            from router.links.tls import peer_certificate_key  # noqa: PLC0415
            from router.links.websocket import MAX_MESSAGE_BYTES, WebSocketTransport  # noqa: PLC0415

            secure = uri.scheme == "wss"
            try:
                connection = await ws_connect(
                    uri.websocket_url,
                    max_size=MAX_MESSAGE_BYTES,
                    compression=None,
                    open_timeout=CONNECT_TIMEOUT_S + (self.handshake_timeout if secure else 0.0),
                    ssl=self._tls(server=False, websocket=True) if secure else None,
                )
            except WebSocketException as exc:  # a refused upgrade: a dial's failure like any other
                raise ConnectionError(str(exc)) from None
            link = PeerLink(self.owner, str(uri), scheme=uri.scheme, expected_key=uri.key)
            if secure:
                link.certificate_key = peer_certificate_key(connection.transport.get_extra_info("ssl_object"))
            self._ws_tasks.add(task := loop.create_task(WebSocketTransport(connection, link).run()))
            task.add_done_callback(self._ws_tasks.discard)
            return link
        if uri.scheme == "quic":
            try:
                engine = self.quic_engine
            except QuicEngineError as exc:  # a dial's failure, with the reason, like any other
                raise ConnectionError(str(exc)) from None
            from router.links.quic import dial_peer as quic_dial  # noqa: PLC0415

            return await quic_dial(
                engine, self.owner, uri.host, uri.port, str(uri), CONNECT_TIMEOUT_S, uri.key
            )
        tls = uri.scheme == "tls"
        _, link = await asyncio.wait_for(
            loop.create_connection(
                lambda: PeerLink(self.owner, str(uri), scheme=uri.scheme, expected_key=uri.key),
                uri.host,
                uri.port,
                ssl=self._tls(server=False) if tls else None,
                ssl_handshake_timeout=self.handshake_timeout if tls else None,
            ),
            CONNECT_TIMEOUT_S + (self.handshake_timeout if tls else 0.0),
        )
        return link

    async def dial_lan(self, key: bytes, host: str, port: int, scope: int) -> PeerLink:
        """Open a link to a node heard on the LAN (``scope``: the interface of an
        IPv6 link-local address), holding it to the key its beacon named."""
        loop = asyncio.get_running_loop()
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
            await asyncio.wait_for(loop.sock_connect(sock, address), CONNECT_TIMEOUT_S)
            _, link = await loop.create_connection(
                lambda: PeerLink(self.owner, uri, link_type=LINK_TYPE_MULTICAST, expected_key=key),
                sock=sock,
            )
        except BaseException:
            sock.close()
            raise
        return link

    def _websocket_path(self, connection: ServerConnection, request: Request, path: str) -> Response | None:
        """Upgrade only on the listener's own path, if it names one (without a
        path, any path, as the reference's daemon does)."""
        if not path or request.path.partition("?")[0] == path:
            return None
        self.counters["websocket upgrades refused: wrong path"] += 1
        return connection.respond(HTTPStatus.NOT_FOUND, "no peering on this path\n")

    async def _serve_websocket(self, connection: ServerConnection, scheme: str) -> None:
        from router.links.websocket import WebSocketTransport  # noqa: PLC0415

        await WebSocketTransport(connection, PeerLink(self.owner, None, scheme=scheme)).run()

    def close(self) -> None:
        for server in self._servers:
            server.close()
        for ws_server in self._ws_servers:
            ws_server.close()
        for quic_server in self._quic_servers:
            quic_server.close()
