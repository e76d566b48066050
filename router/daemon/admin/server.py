"""The admin API's HTTP/1.1 server: h11 parses, this module bounds.

One request per connection; the request head, the body and the time to send
them are bounded; a bounded number of connections, the oldest idle one making
way for a new one; the fixed table of routes of :mod:`router.daemon.admin.views`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import h11

from router.daemon.admin.body import Body
from router.daemon.admin.errors import HTTPError
from router.daemon.admin.views import ROUTES
from router.daemon.errors import DaemonError
from router.daemon.node import Node
from router.http.connection_table import ConnectionTable
from router.logs import get_logger

MAX_HEAD_BYTES = 8192
MAX_CONNECTIONS = 64
MAX_BODY_BYTES = 65536
REQUEST_TIMEOUT_S = 10.0
READ_CHUNK = 4096
"""Bytes read at a time: a request head may run at most this far past MAX_HEAD_BYTES."""

log = get_logger("pinewood.admin")


class ClientGone(DaemonError):
    """The client closed or broke the connection before its request was whole."""


async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
    """The next h11 event of the request, reading as much as it needs."""
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            status = HTTPStatus(exc.error_status_hint)
            if status == HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE:
                raise HTTPError(status, "request head too large") from None
            raise HTTPError(status, f"malformed request: {str(exc)[:200]}") from None
        if event is h11.NEED_DATA:
            try:
                data = await reader.read(READ_CHUNK)
            except (ConnectionError, OSError) as exc:
                raise ClientGone(str(exc)) from None
            conn.receive_data(data)  # b"": the client finished sending
            continue
        if isinstance(event, h11.ConnectionClosed):
            raise ClientGone("closed before the request was whole")
        return event


async def read_request(
    conn: h11.Connection, reader: asyncio.StreamReader, heads: list[h11.Request] | None = None
) -> tuple[h11.Request, bytes]:
    """One whole request: its head and its body (any framing: length or chunked).
    The head is also added to ``heads`` as soon as it is read."""
    request = await _next_event(conn, reader)
    assert isinstance(request, h11.Request)  # h11 gives the head first, or raises
    if heads is not None:
        heads.append(request)
    for name, value in request.headers:
        if name == b"content-length" and int(value) > MAX_BODY_BYTES:
            raise HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY_BYTES} bytes")
    body = bytearray()
    while not isinstance(event := await _next_event(conn, reader), h11.EndOfMessage):
        if isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY_BYTES:
                raise HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY_BYTES} bytes")
    return request, bytes(body)


def response_bytes(
    conn: h11.Connection,
    status: HTTPStatus,
    content_type: str,
    data: bytes,
    head_only: bool = False,
    headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """The whole response, closing the connection after it (for a HEAD request,
    the head alone: its Content-Length says what a GET would have had)."""
    head = h11.Response(
        status_code=status.value,
        reason=status.phrase.encode(),
        headers=[
            ("Content-Type", content_type),
            ("Content-Length", str(len(data))),
            ("Connection", "close"),
            *headers,
        ],
    )
    out = conn.send(head) or b""
    if not head_only:
        out += conn.send(h11.Data(data=data)) or b""
    return out + (conn.send(h11.EndOfMessage()) or b"")


async def handle_connection(
    node: Node, table: ConnectionTable, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """One request, one response, all within ``REQUEST_TIMEOUT_S`` plus the
    longest ping; at most ``MAX_CONNECTIONS`` at once, the oldest idle one
    making way for a new one."""
    transport = writer.transport
    if not table.admit(transport):
        conn = h11.Connection(h11.SERVER)  # answered before the request is read
        body = b'{"error": "too many admin connections in use"}\n'
        writer.write(response_bytes(conn, HTTPStatus.SERVICE_UNAVAILABLE, "application/json", body))
        writer.close()
        return
    try:
        await asyncio.wait_for(_respond(node, reader, writer, table), REQUEST_TIMEOUT_S + 60)
    except (TimeoutError, ConnectionError, asyncio.CancelledError):
        pass
    finally:
        table.release(transport)
        writer.close()


SAFE_METHODS = frozenset({b"GET", b"HEAD"})


def _host_of(value: str) -> str:
    """The host part of a Host header or an Origin's authority, lower case, without brackets."""
    host = value.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def _check_browser_safety(request: h11.Request, allow_remote: bool) -> None:
    """Refuse what a web page in the operator's browser could send: a request to
    a name other than an address (DNS rebinding: a page's own name made to point
    at 127.0.0.1 would let it read the API), and a change from another origin (a
    form or fetch from any site can POST to loopback; only the status page, of
    the same origin, and clients without an Origin header, such as the CLI, may)."""
    headers = {name: value.decode("latin-1") for name, value in request.headers}
    host = _host_of(headers.get(b"host", ""))
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            hint = " (reach it by its address, not a name)" if allow_remote else ""
            raise HTTPError(
                HTTPStatus.MISDIRECTED_REQUEST, f"not served for host {host[:100]!r}{hint}"
            ) from None
    origin = headers.get(b"origin")
    own_origin = "http://" + headers.get(b"host", "").strip().lower()
    if origin is not None and request.method not in SAFE_METHODS and origin.strip().lower() != own_origin:
        raise HTTPError(HTTPStatus.FORBIDDEN, "changes are not accepted from another origin")


async def _answer(node: Node, request: h11.Request, raw: bytes) -> tuple[HTTPStatus, Any]:
    _check_browser_safety(request, node.config.admin_allow_remote)
    target = request.target.decode("ascii", "replace")
    path, _, query = target.partition("?")
    method = request.method.decode("ascii", "replace")
    handler = ROUTES.get((method, path))
    if handler is None:
        allowed = [m for (m, p) in ROUTES if p == path]
        refusal = HTTPStatus.METHOD_NOT_ALLOWED if allowed else HTTPStatus.NOT_FOUND
        raise HTTPError(refusal, f"no route for {method} {path[:100]}")
    try:
        body = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise HTTPError(HTTPStatus.BAD_REQUEST, "body is not JSON") from None
    code, result = await handler(node, parse_qs(query), body)
    return HTTPStatus(code), result


async def _respond(
    node: Node, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, table: ConnectionTable
) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
    status, content_type = HTTPStatus.INTERNAL_SERVER_ERROR, "application/json"
    payload: Any = {"error": "internal error"}
    headers: tuple[tuple[str, str], ...] = ()
    heads: list[h11.Request] = []
    try:
        request, raw = await asyncio.wait_for(read_request(conn, reader, heads), REQUEST_TIMEOUT_S)
        table.busy(writer.transport)
        status, result = await _answer(node, request, raw)
        if isinstance(result, Body):
            payload, content_type, headers = result.data, result.content_type, result.headers
        else:
            payload = result
    except HTTPError as exc:
        status, payload = HTTPStatus(exc.status), {"error": str(exc)}
    except (ClientGone, TimeoutError):
        return
    except Exception as exc:  # the admin API must not take the node down with it
        log.error("admin request failed", error=f"{type(exc).__name__}: {exc}", exc_info=True)
    if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return  # nothing can be sent on this connection any more
    data = payload if isinstance(payload, bytes) else (json.dumps(payload, indent=1) + "\n").encode()
    head_only = bool(heads) and heads[0].method == b"HEAD"
    writer.write(response_bytes(conn, status, content_type, data, head_only, headers))
    with contextlib.suppress(ConnectionError, OSError):
        await writer.drain()


async def start_admin(node: Node, host: str, port: int) -> asyncio.Server:
    table = ConnectionTable(MAX_CONNECTIONS)
    server = await asyncio.start_server(lambda r, w: handle_connection(node, table, r, w), host, port)
    bound = server.sockets[0].getsockname() if server.sockets else (host, port)
    log.info("admin API listening", address=f"http://{bound[0]}:{bound[1]}")
    return server
