"""The inbound gateway: federation requests from other nodes, to the homeserver.

Every stream that arrives with ALPN ``matrix`` carries HTTP/1.1 requests from
the homeserver of the node that opened it.  Each request is read with h11 and
checked before the homeserver sees it (:mod:`router.matrix.federation`): only
server-server API paths pass, a signed request must name the node that opened
the session as its origin, and each node has a share of requests a second
and of streams at once (:mod:`router.gateway.shares`).  What passes is sent
on to the homeserver's plain-HTTP federation listener (on the stream's own
connection to it, kept while requests follow each other closely), head first
and the body streamed as it arrives (never held whole), and the answer
streamed back; a refused request is answered by the gateway with
the reason, counted by reason and logged at a bounded rate, and the stream
serves the next request.  A stream that breaks HTTP gets ``400`` and is
closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum
from http import HTTPStatus

import h11

from router.gateway.shares import ShareLimits, Shares
from router.gateway.tunnel import StreamSide
from router.http.requests import error_response
from router.logs import get_logger
from router.matrix.federation import DEFAULT_PATHS, Refusal, check_origin, check_path
from router.routing.budget import TokenBucket
from router.sessions.codes import StreamResetCode
from router.sessions.errors import SessionError
from router.sessions.stream import SessionStream

log = get_logger("pinewood.gateway")

CONNECT_TIMEOUT_S = 10.0
MAX_HEAD = 64 * 1024
"""The largest request or answer head taken (h11 refuses a longer one)."""
MAX_DISCARD = 1 << 20
"""The most of a refused request's body read and dropped to keep the stream;
past it the stream is closed after the answer."""
READ_CHUNK = 65536
LOG_LINES_PER_S = 0.2
LOG_BURST = 10.0
"""Refusals and broken streams logged: ten at once, then one every five
seconds; the rest are counted, and the next line says how many went unlogged."""
HOP_BY_HOP = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade", b"expect")
)
"""Headers about one connection, not the request: not passed on either way."""
MAX_DETAIL = 200
"""The most of a path, method or error text that other nodes chose put in a log line or answer."""
REUSE_IDLE_S = 2.0
"""A connection to the homeserver quiet for longer is not used again: the
homeserver may be closing it, and a request already streamed to it could not
be sent again."""
LINGER_S = 10.0
"""The longest a finished stream waits for the other side to finish too."""


class InboundResetCode(IntEnum):
    """Why the inbound gateway resets a federation stream (QUIC application error
    codes); the proxy of the node that opened the stream turns each into an
    HTTP answer for its homeserver.  A node with no inbound gateway resets the
    stream with :attr:`StreamResetCode.REFUSED` (nothing takes the protocol)."""

    NO_HOMESERVER = StreamResetCode.REFUSED
    """This node serves no homeserver."""
    HOMESERVER_UNREACHABLE = 0x11
    """The homeserver did not take the connection."""
    BUSY = 0x12
    """As many federation streams are being served as the node allows, in
    all or from the node that opened this one."""


@dataclass(frozen=True, slots=True)
class InboundSettings:
    host: str
    port: int
    idle_timeout: float
    """Seconds a stream may wait for the next request, or a request or answer for its next bytes."""
    paths: tuple[str, ...] = DEFAULT_PATHS
    """Path prefixes that reach the homeserver."""
    server_name_suffix: str = ""
    limits: ShareLimits = field(default_factory=ShareLimits)


@dataclass(slots=True)
class _Upstream:
    """A connection to the homeserver, kept for the stream's next request."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    conn: h11.Connection
    idle_since: float


@dataclass(slots=True)
class _StreamState:
    upstream: _Upstream | None = None

    def close_upstream(self) -> None:
        if self.upstream is not None:
            self.upstream.writer.close()
            self.upstream = None


class _Closed(Exception):
    """The stream cannot carry another request; end it quietly."""


class _Unreachable(Exception):
    """The homeserver did not take a connection."""


class InboundGateway:
    def __init__(self, settings: InboundSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.shares = Shares(settings.limits)
        self.counters: Counter[str] = Counter()
        self._log_budget = TokenBucket(LOG_LINES_PER_S, LOG_BURST, clock())
        self._unlogged = 0

    @property
    def active(self) -> int:
        return self.shares.active

    async def handle(self, stream: SessionStream) -> None:
        peer = stream.key
        refused = self.shares.open_stream(peer, self.clock())
        if refused is not None:
            self.counters[f"refused: {refused}"] += 1
            stream.abort(InboundResetCode.BUSY)
            return
        self.counters["streams served"] += 1
        try:
            await self._serve(stream)
        finally:
            self.shares.close_stream(peer)

    async def _serve(self, stream: SessionStream) -> None:
        side = StreamSide(stream)
        down = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        state = _StreamState()
        try:
            await self._serve_requests(stream, side, down, state)
        finally:
            state.close_upstream()
            await self._linger(stream)

    async def _linger(self, stream: SessionStream) -> None:
        """Once our side is finished, wait a little for the other's, reading and
        dropping what it still sends: a stream reset now would lose answers
        still on their way."""
        if stream.done:
            return
        dropped = 0
        try:
            async with asyncio.timeout(min(self.settings.idle_timeout, LINGER_S)):
                while dropped <= MAX_DISCARD and (data := await stream.read(READ_CHUNK)):
                    dropped += len(data)
        except (TimeoutError, SessionError):
            pass

    async def _serve_requests(
        self, stream: SessionStream, side: StreamSide, down: h11.Connection, state: _StreamState
    ) -> None:
        try:
            while True:
                request = await self._next(down, side.read, waiting=True)
                if not isinstance(request, h11.Request):
                    break  # the other side finished, between requests
                await self._one(stream, side, down, request, state)
                if down.our_state is not h11.DONE or down.their_state is not h11.DONE:
                    break
                down.start_next_cycle()
            await side.finish()
        except h11.RemoteProtocolError as exc:
            why = str(exc)[:MAX_DETAIL]
            self._refused(Refusal.NOT_HTTP, stream.key, b"", b"", why)
            with contextlib.suppress(SessionError, OSError):
                if down.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await side.write(
                        error_response(HTTPStatus.BAD_REQUEST, f"{Refusal.NOT_HTTP.value}: {why}")
                    )
                await side.finish()
        except _Closed:
            with contextlib.suppress(SessionError, OSError):
                await side.finish()
        except _Unreachable as exc:
            self.counters["failed: homeserver unreachable"] += 1
            self._log("cannot reach the homeserver", address=self._address, error=str(exc))
            stream.abort(InboundResetCode.HOMESERVER_UNREACHABLE)
        except (TimeoutError, SessionError, OSError, h11.LocalProtocolError) as exc:
            self.counters["streams broken"] += 1
            reason = (str(exc) or type(exc).__name__)[:MAX_DETAIL]
            self._log("inbound federation stream ended", peer=stream.key.hex(), reason=reason)
            stream.abort()

    @property
    def _address(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    async def _next(
        self, conn: h11.Connection, read: Callable[[], Awaitable[bytes]], waiting: bool = False
    ) -> object:
        """The next h11 event of ``conn``, reading as much as it needs.  With
        ``waiting`` (between requests) a quiet stream ends quietly."""
        while True:
            event = conn.next_event()
            if event is h11.PAUSED:
                raise _Closed()  # a protocol switch or a pipelined request past our answer
            if event is not h11.NEED_DATA:
                return event
            try:
                data = await asyncio.wait_for(read(), self.settings.idle_timeout)
            except TimeoutError:
                if waiting and conn.their_state is h11.IDLE:
                    raise _Closed() from None
                raise
            conn.receive_data(data)

    async def _one(
        self,
        stream: SessionStream,
        side: StreamSide,
        down: h11.Connection,
        request: h11.Request,
        state: _StreamState,
    ) -> None:
        """Check one request; pass it to the homeserver or answer it."""
        peer = stream.key
        headers = [(bytes(k), bytes(v)) for k, v in request.headers]  # names in lower case
        refusal = check_path(request.target, self.settings.paths)
        detail = ""
        retry_after: int | None = None
        if refusal is None:
            found = check_origin(request.target, headers, peer, self.settings.server_name_suffix)
            if found is not None:
                refusal, detail = found
        if refusal is None:
            retry_after = self.shares.admit_request(peer, self.clock())
            if retry_after is not None:
                refusal = Refusal.OVER_RATE
                detail = f"retry after {retry_after} s"
        if refusal is not None:
            self._refused(refusal, peer, request.method, request.target, detail)
            await self._answer(side, down, refusal, detail, retry_after, request.method)
            return
        self.counters["requests passed"] += 1
        await self._pass(side, down, request, state)

    def _refused(self, refusal: Refusal, peer: bytes, method: bytes, target: bytes, detail: str) -> None:
        self.counters[refusal.counter] += 1
        self._log(
            "refused an inbound federation request",
            reason=refusal.value,
            detail=detail,
            peer=peer.hex(),
            method=method[:MAX_DETAIL].decode("latin-1"),
            path=target[:MAX_DETAIL].decode("latin-1"),
        )

    def _log(self, event: str, **fields: object) -> None:
        """Log at a bounded rate: what other nodes can cause must not flood the log."""
        if not self._log_budget.take(self.clock()):
            self._unlogged += 1
            return
        log.info(event, unlogged_before=self._unlogged, **fields)
        self._unlogged = 0

    async def _answer(
        self,
        side: StreamSide,
        down: h11.Connection,
        refusal: Refusal,
        detail: str,
        retry_after: int | None,
        method: bytes,
    ) -> None:
        extra = [(b"Retry-After", str(retry_after).encode())] if retry_after is not None else []
        await _respond(side, down, refusal.status.value, refusal.answer(detail), method, extra)
        dropped = 0
        while down.their_state is h11.SEND_BODY:
            if dropped > MAX_DISCARD or down.they_are_waiting_for_100_continue:
                raise _Closed()  # the answer is out; the body is not worth reading
            event = await self._next(down, side.read)
            if isinstance(event, h11.Data):
                dropped += len(event.data)
            elif isinstance(event, h11.ConnectionClosed):
                raise _Closed()

    async def _pass(
        self, side: StreamSide, down: h11.Connection, request: h11.Request, state: _StreamState
    ) -> None:
        """Send ``request`` on to the homeserver and its answer back, on the
        stream's connection to the homeserver if it was used within
        :data:`REUSE_IDLE_S` (a connection quiet for longer may be closing on
        the homeserver's side), else on a new one."""
        headers = [(k, v) for k, v in request.headers.raw_items() if k.lower() not in HOP_BY_HOP]
        try:
            event = h11.Request(method=request.method, target=request.target, headers=headers)
        except h11.LocalProtocolError as exc:  # an HTTP/1.0 request with no Host, say
            self._refused(Refusal.NOT_HTTP, side.stream.key, request.method, request.target, str(exc))
            await self._answer(side, down, Refusal.NOT_HTTP, str(exc), None, request.method)
            raise _Closed() from None
        up = state.upstream
        if up is not None and (
            self.clock() - up.idle_since > REUSE_IDLE_S
            or up.conn.our_state is not h11.IDLE
            or up.writer.is_closing()
            or up.reader.at_eof()
        ):
            state.close_upstream()
            up = None
        if up is None:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.settings.host, self.settings.port), CONNECT_TIMEOUT_S
                )
            except (OSError, TimeoutError) as exc:
                raise _Unreachable(str(exc)) from None
            up = state.upstream = _Upstream(
                reader, writer, h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD), 0.0
            )
            self.counters["connections to the homeserver"] += 1
        try:
            up.writer.write(up.conn.send(event) or b"")
            if down.they_are_waiting_for_100_continue:
                await side.write(down.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
            await self._send_body(side, down, up.conn, up.writer)
            try:
                await self._send_answer(side, down, up.conn, up.reader)
            except (OSError, TimeoutError, h11.RemoteProtocolError) as exc:
                state.close_upstream()
                if down.our_state is not h11.SEND_RESPONSE:
                    raise OSError(f"the homeserver broke its answer: {exc}") from None
                # Nothing of the answer has gone out yet: say why instead.
                self.counters["answered 502: the homeserver broke its answer"] += 1
                self._log("the homeserver broke its answer", error=str(exc) or type(exc).__name__)
                body = b'{"errcode":"M_UNKNOWN","error":"the homeserver did not answer"}'
                await _respond(side, down, 502, body, request.method)
                return
        except BaseException:
            state.close_upstream()
            raise
        if up.conn.our_state is h11.DONE and up.conn.their_state is h11.DONE:
            up.conn.start_next_cycle()
            up.idle_since = self.clock()
        else:
            state.close_upstream()

    async def _send_body(
        self, side: StreamSide, down: h11.Connection, up: h11.Connection, writer: asyncio.StreamWriter
    ) -> None:
        """The request's body, to the homeserver as it arrives."""
        sent = 0
        while True:
            event = await self._next(down, side.read)
            if isinstance(event, h11.Data):
                sent += len(event.data)
                writer.write(up.send(event) or b"")
                await writer.drain()
            elif isinstance(event, h11.EndOfMessage):
                writer.write(up.send(h11.EndOfMessage(headers=event.headers)) or b"")
                await writer.drain()
                break
            else:
                raise _Closed()  # the client went away in the middle of a request
        self.counters["bytes to the homeserver"] += sent

    async def _send_answer(
        self, side: StreamSide, down: h11.Connection, up: h11.Connection, reader: asyncio.StreamReader
    ) -> None:
        """The homeserver's answer, back to the stream as it arrives."""
        received = 0
        while True:
            event = await self._next(up, lambda: reader.read(READ_CHUNK))
            if isinstance(event, h11.InformationalResponse):
                continue  # 100 Continue was answered by the gateway
            if isinstance(event, h11.Response):
                kept = [(k, v) for k, v in event.headers.raw_items() if k.lower() not in HOP_BY_HOP]
                answer = h11.Response(status_code=event.status_code, headers=kept, reason=event.reason)
                await side.write(down.send(answer) or b"")
            elif isinstance(event, h11.Data):
                received += len(event.data)
                await side.write(down.send(event) or b"")
            elif isinstance(event, h11.EndOfMessage):
                await side.write(down.send(h11.EndOfMessage()) or b"")
                break
            else:
                raise OSError("the homeserver closed the connection in the middle of its answer")
        self.counters["bytes from the homeserver"] += received


async def _respond(
    side: StreamSide,
    down: h11.Connection,
    status: int,
    body: bytes,
    method: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """A whole JSON answer from the gateway itself (its head alone for HEAD)."""
    headers = [(b"Content-Type", b"application/json"), (b"Content-Length", str(len(body)).encode())]
    out = down.send(h11.Response(status_code=status, headers=headers + (extra or []))) or b""
    if method != b"HEAD":
        out += down.send(h11.Data(data=body)) or b""
    out += down.send(h11.EndOfMessage()) or b""
    await side.write(out)
