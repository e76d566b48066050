"""HTTP/1.1 requests read with h11, keeping the exact bytes each came as.

The gateway reads requests from byte pipes (a client's socket, or the TLS
inside a tunnel).  Most of what it reads it only looks at: the head of a
proxy request, or whether a request is the well-known lookup.  One thing it
keeps: a federation transaction for a node that is away is deposited byte for
byte as the homeserver sent it.  :class:`RequestReader` gives both: h11 parses
(and refuses what is not HTTP), and each request comes with its raw bytes and
whatever was read past it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus

import h11

from router.http.errors import HttpError

Read = Callable[[], Awaitable[bytes]]
"""Bytes from the other side; b"" once it has finished."""


class RequestError(HttpError):
    """What was read is not an HTTP/1.1 request the reader takes; ``status`` is the answer."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Request:
    method: bytes
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    """Names in lower case, values as sent."""
    body: bytes
    """The body, de-chunked."""
    raw: bytes
    """The request exactly as it was read: head, framing and body."""

    def header(self, name: bytes) -> bytes | None:
        return next((value for key, value in self.headers if key == name), None)


class RequestReader:
    """Successive whole requests from ``read``, parsed by h11, answered through :meth:`respond`."""

    def __init__(self, read: Read, *, max_head: int, max_body: int, prefix: bytes = b"") -> None:
        self.read = read
        self.max_body = max_body
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head)
        self._raw = bytearray()
        """What was given to h11 and not yet handed out as a request's raw bytes."""
        self._method = b""
        if prefix:
            self._feed(prefix)

    def _feed(self, data: bytes) -> None:
        self._raw += data
        self.conn.receive_data(data)

    async def _event(self, timeout: float) -> object:
        while True:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise RequestError(
                    HTTPStatus(exc.error_status_hint), f"not an HTTP/1.1 request: {exc}"
                ) from None
            if event is not h11.NEED_DATA:
                return event
            self._feed(await asyncio.wait_for(self.read(), timeout))

    async def head(self, timeout: float) -> h11.Request | None:
        """The next request's head (None if the client finished first); its body
        is left unread, and :meth:`unread` gives the bytes read past the head."""
        event = await self._event(timeout)
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):
            raise RequestError(HTTPStatus.BAD_REQUEST, "expected a request")
        self._method = bytes(event.method)
        return event

    def unread(self) -> bytes:
        """Bytes read from the client that h11 has not parsed yet."""
        return bytes(self.conn.trailing_data[0])

    def read_so_far(self) -> bytes:
        """Every byte read from the client since the last whole request was handed out."""
        return bytes(self._raw)

    async def next(self, timeout: float) -> Request | None:
        """The next whole request, or None if the client finished before one began."""
        head = await self.head(timeout)
        if head is None:
            return None
        length = next((v for k, v in head.headers if k == b"content-length"), None)
        if length is not None and int(length) > self.max_body:
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {self.max_body} bytes")
        body = bytearray()
        while not isinstance(event := await self._event(timeout), h11.EndOfMessage):
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > self.max_body:
                    raise RequestError(
                        HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {self.max_body} bytes"
                    )
            elif isinstance(event, h11.ConnectionClosed):
                raise RequestError(HTTPStatus.BAD_REQUEST, "the client closed in the middle of a request")
        pending = len(self.conn.trailing_data[0])
        raw = bytes(self._raw[: len(self._raw) - pending])
        del self._raw[: len(raw)]
        headers = tuple((bytes(k), bytes(v)) for k, v in head.headers.raw_items())
        lowered = tuple((k.lower(), v) for k, v in headers)
        return Request(bytes(head.method), bytes(head.target), lowered, bytes(body), raw)

    def respond(self, status: HTTPStatus, body: bytes, content_type: str = "application/json") -> bytes:
        """The bytes of an answer to the request just read; after it, the reader
        is ready for the client's next request (or, if h11 says the connection
        must close, it will close)."""
        head = h11.Response(
            status_code=status.value,
            reason=status.phrase.encode(),
            headers=[("Content-Type", content_type), ("Content-Length", str(len(body)))],
        )
        out = self.conn.send(head) or b""
        if self._method != b"HEAD":  # a HEAD answer is the head alone
            out += self.conn.send(h11.Data(data=body)) or b""
        out += self.conn.send(h11.EndOfMessage()) or b""
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        return out

    @property
    def must_close(self) -> bool:
        """Whether the connection cannot carry another request."""
        return self.conn.our_state is not h11.IDLE


def error_response(status: HTTPStatus, message: str, content_type: str = "text/plain") -> bytes:
    """A whole answer that closes the connection, for a request that may not
    have been parsed at all (h11 answers only requests it has seen)."""
    body = message.encode()
    return (
        f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
