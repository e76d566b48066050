"""The outbound gateway: a federation proxy for the local homeserver.

One listener on loopback speaks three dialects, told apart by the first byte:

* SOCKS5 with remote names (``0x05``): what Conduit's ``proxy`` setting speaks;
* HTTP ``CONNECT name:port``: what Synapse does with ``https_proxy`` (it asks for
  ``name:443`` for ``/.well-known/matrix/server``, then ``name:8448``);
* a plain HTTP request in absolute form (``GET http://name/path``).

The destination name must stand for a node key (:mod:`router.matrix.names`);
any other is refused with a clear error and never looked up.  Both ports of a
name reach the same node.  Inside a tunnel, TLS from the homeserver is answered
here with a certificate minted for the name by the local CA, and the HTTP bytes
inside go onto a session stream with ALPN ``matrix``, as P2P Dendrite sends
them.  A tunnel whose first byte is not a TLS record is carried as it is.

The requests are parsed by :mod:`router.gateway.proxy_requests`; this module
reads their bytes, answers and carries the tunnels.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TypeVar

from relay.client import RelayClient
from router.gateway.ca import LocalCA
from router.gateway.errors import GatewayError
from router.gateway.inbound import InboundResetCode
from router.gateway.offline import serve_away
from router.gateway.proxy_requests import (
    CONNECT_ESTABLISHED,
    MAX_REQUEST_HEAD,
    SOCKS_VERSION,
    HttpForward,
    HttpRequestError,
    Message,
    SocksAuthMethod,
    SocksGreetingError,
    SocksReply,
    SocksRequestError,
    parse_http_request,
    parse_socks_greeting,
    parse_socks_request,
    socks_method_selection,
    socks_reply,
)
from router.gateway.tunnel import (
    TLS_HANDSHAKE_RECORD,
    ByteSide,
    IdleTimeout,
    NoAnswer,
    PlainSide,
    PrefixedSide,
    StreamSide,
    TlsServerSide,
    TunnelError,
    pipe,
)
from router.http.connection_table import ConnectionTable
from router.http.requests import RequestError, RequestReader, error_response
from router.logs import get_logger
from router.matrix.federation import ALPN as MATRIX_ALPN
from router.matrix.names import key_for_name
from router.sessions.errors import SessionError, SessionTimeout, StreamReset
from router.sessions.runtime import Sessions
from router.sessions.stream import SessionStream

log = get_logger("pinewood.gateway")

HEAD_TIMEOUT_S = 30.0
"""How long a client has for each message of its request, for its first bytes in a
tunnel, and for a TLS handshake."""
FIRST_BYTE_TIMEOUT_S = 10.0
"""A client that has sent nothing this long after connecting is closed."""
MAX_CLIENTS = 1024
WELL_KNOWN_PORT = 443
AWAY_MEMORY_S = 30.0
"""After a node was found away, tunnels to it go straight to its relays for this long."""
FEDERATION_PORT = 8448

SOCKS_REPLY_FOR_STATUS: dict[int, SocksReply] = {
    HTTPStatus.FORBIDDEN: SocksReply.NOT_ALLOWED,
    HTTPStatus.BAD_GATEWAY: SocksReply.GENERAL_FAILURE,
    HTTPStatus.SERVICE_UNAVAILABLE: SocksReply.CONNECTION_REFUSED,
    HTTPStatus.GATEWAY_TIMEOUT: SocksReply.HOST_UNREACHABLE,
}
"""The SOCKS5 answer to a refusal that HTTP clients get as this status; any
other status is answered with :attr:`SocksReply.GENERAL_FAILURE`."""

M = TypeVar("M", bound=Message)


async def read_message(
    reader: asyncio.StreamReader, data: bytes, parse: Callable[[bytes, bool], M | None]
) -> tuple[M, bytes]:
    """Read until ``parse`` finds a whole message in ``data`` and what follows it;
    the message, and the bytes read past it.  The parser's error (or a timeout)
    ends it early; reads are of at most :data:`MAX_REQUEST_HEAD` bytes, and the
    parser refuses more than that without a message, so what is held stays bounded."""
    ended = False
    async with asyncio.timeout(HEAD_TIMEOUT_S):
        while (message := parse(data, ended)) is None:
            if ended:  # a parser refuses an incomplete message at the end; this is a guard
                raise asyncio.IncompleteReadError(data, None)
            more = await reader.read(MAX_REQUEST_HEAD)
            ended = not more
            data += more
    return message, data[message.size :]


class ProxyError(GatewayError):
    """A request the proxy refuses; ``status`` is the HTTP status to answer."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class OutboundSettings:
    suffix: str
    session_timeout: float
    idle_timeout: float


class OutboundProxy:
    """Serves the homeserver's outbound federation connections."""

    def __init__(
        self, sessions: Sessions, ca: LocalCA, settings: OutboundSettings, relay: RelayClient | None = None
    ) -> None:
        self.sessions = sessions
        self.relay = relay
        self._away: dict[bytes, float] = {}
        self.ca = ca
        self.settings = settings
        self.counters: Counter[str] = Counter()
        self.clients = ConnectionTable(MAX_CLIENTS)
        self.server: asyncio.Server | None = None
        self.address: tuple[str, int] | None = None

    async def start(self, host: str, port: int) -> None:
        self.server = await asyncio.start_server(self._client, host, port, limit=MAX_REQUEST_HEAD)
        self.address = self.server.sockets[0].getsockname()[:2]
        log.info("federation proxy listening", address=f"{self.address[0]}:{self.address[1]}")

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        transport = writer.transport
        if not self.clients.admit(transport):
            self.counters["refused: too many clients"] += 1
            writer.write(
                error_response(
                    HTTPStatus.SERVICE_UNAVAILABLE, "pinewood gateway: too many connections in use\n"
                )
            )
            writer.close()
            return
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            transport.abort()  # the node is stopping
            return
        finally:
            self.clients.release(transport)
        # Close gracefully: what is still buffered for the client goes out first.
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 10.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await asyncio.wait_for(reader.read(1), FIRST_BYTE_TIMEOUT_S)
            if not first:
                return
            if first[0] == SOCKS_VERSION:
                await self._socks5(first, reader, writer)
            else:
                await self._http(first, reader, writer)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError):
            self.counters["clients gone before a request"] += 1
        except (TunnelError, SessionError) as exc:
            self.counters["tunnels broken"] += 1
            log.info("federation tunnel ended", reason=str(exc))

    # ---------------------------------------------------------------- destinations

    def _key(self, host: str) -> bytes:
        key = key_for_name(host, self.settings.suffix)
        if key is None:
            self.counters["refused: not a key name"] += 1
            raise ProxyError(
                HTTPStatus.FORBIDDEN,
                f"{host!r} is not a server name that stands for a node key (64 hex or 52 base32 "
                "characters); the overlay gateway refuses to send it anywhere else",
            )
        return key

    async def _open(self, key: bytes, host: str) -> SessionStream:
        try:
            stream = await self.sessions.open_stream(key, MATRIX_ALPN, self.settings.session_timeout)
        except SessionError as exc:
            self.counters["failed: destination unreachable"] += 1
            status = HTTPStatus.GATEWAY_TIMEOUT if isinstance(exc, SessionTimeout) else HTTPStatus.BAD_GATEWAY
            raise ProxyError(status, f"cannot reach {host} over the overlay: {exc}") from None
        self.counters["tunnels opened"] += 1
        return stream

    async def _open_or_away(self, key: bytes, host: str) -> SessionStream | None:
        """A stream to the node, or None if it is away and has relays to leave mail on."""
        loop = asyncio.get_running_loop()
        if self.relay is not None and self._away.get(key, 0.0) > loop.time():
            return None
        try:
            return await self._open(key, host)
        except ProxyError as exc:
            if exc.status != 504 or self.relay is None or await self.relay.lookup(key) is None:
                raise
        self._away[key] = loop.time() + AWAY_MEMORY_S
        if len(self._away) > 10_000:
            self._away = {k: t for k, t in self._away.items() if t > loop.time()}
        self.counters["destinations found away"] += 1
        return None

    async def _tunnel(self, client: PlainSide, host: str, port: int) -> None:
        """Carry a CONNECT or SOCKS5 tunnel that the client may now use."""
        self.clients.busy(client.writer.transport)
        key = self._key(host)
        stream: SessionStream | None = None
        away = False
        if port != WELL_KNOWN_PORT:
            stream = await self._open_or_away(key, host)
            away = stream is None
        try:
            side = await self._client_side(client, host)
        except BaseException:
            if stream is not None:
                stream.abort()  # the client failed (TLS, a timeout) before a request: so does the stream
            raise
        if side is None:
            if stream is not None:
                stream.abort()  # the client went before its first byte
            return
        if away:
            relay = self.relay
            assert relay is not None

            async def deposit(request: bytes) -> None:
                await relay.deposit(key, request)

            await serve_away(side, deposit, self.settings.idle_timeout, self.counters)
            return
        if stream is None:
            # The well-known port.  Key-named servers delegate nowhere: the
            # well-known is answered here, at once, even while the node is
            # away (else the homeserver falls back to DNS SRV lookups, which
            # fail without DNS).  Anything else asked on this port goes to the node.
            requests = RequestReader(side.read, max_head=MAX_REQUEST_HEAD, max_body=0)
            try:
                first_request = await asyncio.wait_for(requests.head(HEAD_TIMEOUT_S), HEAD_TIMEOUT_S)
            except RequestError as exc:
                await side.write(error_response(exc.status, f"pinewood gateway: {exc}\n"))
                await side.finish()
                return
            if first_request is None:
                await side.finish()
                return
            if first_request.method == b"GET" and first_request.target == b"/.well-known/matrix/server":
                self.counters["well-known answered"] += 1
                body = json.dumps({"m.server": f"{host}:{FEDERATION_PORT}"})
                await side.write(error_response(HTTPStatus.OK, body, "application/json"))
                await side.finish()
                return
            try:
                stream = await self._open(key, host)
            except ProxyError as exc:
                await side.write(error_response(exc.status, f"pinewood gateway: {exc}\n"))
                await side.finish()
                return
            side = PrefixedSide(side, requests.read_so_far())
        try:
            up, down = await pipe(side, StreamSide(stream), self.settings.idle_timeout, spare_a=True)
        except NoAnswer as exc:
            await self._no_answer(side, host, exc)
            return
        self.counters["bytes to the overlay"] += up
        self.counters["bytes from the overlay"] += down

    def _failure(self, host: str, exc: NoAnswer) -> tuple[HTTPStatus, str]:
        """What the homeserver is told when the node ``host`` gave no answer."""
        cause = exc.cause
        if isinstance(cause, StreamReset):
            if cause.code == InboundResetCode.NO_HOMESERVER:
                return HTTPStatus.BAD_GATEWAY, (
                    f"{host} runs no homeserver: its node refused the federation stream"
                )
            if cause.code == InboundResetCode.HOMESERVER_UNREACHABLE:
                return HTTPStatus.BAD_GATEWAY, f"the homeserver of {host} is not answering its node"
            if cause.code == InboundResetCode.BUSY:
                return HTTPStatus.SERVICE_UNAVAILABLE, (
                    f"{host} is serving as many federation requests as it allows; try again later"
                )
            return HTTPStatus.BAD_GATEWAY, f"{host} broke off the request (stream reset, code {cause.code})"
        if isinstance(cause, IdleTimeout):
            return HTTPStatus.GATEWAY_TIMEOUT, (
                f"no answer from {host} within {self.settings.idle_timeout:g} s"
            )
        return HTTPStatus.BAD_GATEWAY, f"the session with {host} broke before it answered: {cause}"

    async def _no_answer(self, side: ByteSide, host: str, exc: NoAnswer) -> None:
        """Answer the client in its tunnel: the node did not answer its request."""
        status, reason = self._failure(host, exc)
        self.counters[f"answered {status.value}: no answer from the node"] += 1
        log.info("federation request not answered", destination=host, status=status.value, reason=reason)
        # The client may have gone, or finished its side: then there is no one to tell.
        with contextlib.suppress(TunnelError, OSError, ConnectionError, RuntimeError):
            await side.write(error_response(status, f"pinewood gateway: {reason}\n"))
            await side.finish()

    # ---------------------------------------------------------------- HTTP

    async def _http(self, first: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request, rest = await read_message(reader, first, parse_http_request)
        except HttpRequestError as exc:
            self.counters["refused: bad request"] += 1
            await self._answer(writer, exc.status, str(exc))
            return
        try:
            if not isinstance(request, HttpForward):  # CONNECT
                client = PlainSide(reader, writer, rest)
                client.answer = CONNECT_ESTABLISHED
                await self._tunnel(client, request.host, request.port)
                return
            self.clients.busy(writer.transport)
            stream = await self._open(self._key(request.host), request.host)
        except ProxyError as exc:
            await self._answer(writer, exc.status, str(exc))
            return
        await self._forward(request, stream, PlainSide(reader, writer, rest))

    async def _forward(self, request: HttpForward, stream: SessionStream, client: PlainSide) -> None:
        """Carry a request in absolute form to the node in origin form, one
        request per connection; what the client sent past the head (its body)
        follows as it came."""
        stream.write(request.head)
        try:
            up, down = await pipe(client, StreamSide(stream), self.settings.idle_timeout, spare_a=True)
        except NoAnswer as exc:
            await self._no_answer(client, request.host, exc)
            return
        self.counters["bytes to the overlay"] += up + len(request.head)
        self.counters["bytes from the overlay"] += down

    async def _client_side(self, client: PlainSide, host: str) -> ByteSide | None:
        """Tell the client its tunnel is open and take its first bytes: the side
        to read its requests from (inside TLS if it starts TLS), or None if it
        closed before sending anything."""
        await self._answer_tunnel(client)
        first = await asyncio.wait_for(client.read(), HEAD_TIMEOUT_S)
        if not first:
            return None
        if first[0] != TLS_HANDSHAKE_RECORD:
            return PlainSide(client.reader, client.writer, first)
        tls = TlsServerSide(PlainSide(client.reader, client.writer, first), self.ca.server_context(host))
        await asyncio.wait_for(tls.handshake(), HEAD_TIMEOUT_S)
        return tls

    async def _answer_tunnel(self, client: PlainSide) -> None:
        """Tell the client its tunnel is open (the dialect's own success reply)."""
        client.writer.write(client.answer)
        await client.writer.drain()

    async def _answer(self, writer: asyncio.StreamWriter, status: HTTPStatus, message: str) -> None:
        log.info("federation proxy refused a request", status=status.value, reason=message)
        writer.write(error_response(status, f"pinewood gateway: {message}\n"))
        with contextlib.suppress(ConnectionError, OSError):
            await writer.drain()

    # ---------------------------------------------------------------- SOCKS5

    async def _socks5(self, first: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            greeting, rest = await read_message(reader, first, parse_socks_greeting)
        except SocksGreetingError as exc:
            self.counters["refused: bad request"] += 1
            log.info("federation proxy refused a SOCKS5 greeting", reason=str(exc))
            writer.write(socks_method_selection(SocksAuthMethod.NO_ACCEPTABLE_METHODS))
            return
        writer.write(socks_method_selection(greeting.method))
        if greeting.method is SocksAuthMethod.NO_ACCEPTABLE_METHODS:
            self.counters["refused: socks authentication"] += 1
            return
        try:
            request, rest = await read_message(reader, rest, parse_socks_request)
        except SocksRequestError as exc:
            self.counters["refused: bad request"] += 1
            log.info("federation proxy refused a SOCKS5 request", reply=exc.reply.name, reason=str(exc))
            await self._socks_reply(writer, exc.reply)
            return
        client = PlainSide(reader, writer, rest)
        client.answer = socks_reply(SocksReply.SUCCEEDED)
        try:
            await self._tunnel(client, request.host, request.port)
        except ProxyError as exc:
            log.info(
                "federation proxy refused a request", host=request.host, port=request.port, reason=str(exc)
            )
            await self._socks_reply(
                writer, SOCKS_REPLY_FOR_STATUS.get(exc.status, SocksReply.GENERAL_FAILURE)
            )

    async def _socks_reply(self, writer: asyncio.StreamWriter, code: SocksReply) -> None:
        writer.write(socks_reply(code))
        with contextlib.suppress(ConnectionError, OSError):
            await writer.drain()
