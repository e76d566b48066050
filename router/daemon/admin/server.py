"""The admin API's HTTP/1.1 server: one request per connection, bounded request
line, headers and body, a bounded number of connections (the oldest idle one
making way), and the fixed table of routes of :mod:`router.daemon.admin.views`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog

from router.daemon.admin.errors import HTTPError
from router.daemon.admin.views import ROUTES
from router.daemon.node import Node
from router.http.connection_table import ConnectionTable

MAX_HEAD_BYTES = 8192
MAX_CONNECTIONS = 64
MAX_BODY_BYTES = 65536
REQUEST_TIMEOUT_S = 10.0

log = structlog.get_logger("pinewood.admin")


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > MAX_HEAD_BYTES:
        raise HTTPError(431, "request head too large")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HTTPError(400, "malformed request line")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length_text = headers.get("content-length", "0")
    if not re.fullmatch(r"[0-9]{1,7}", length_text) or int(length_text) > MAX_BODY_BYTES:
        raise HTTPError(413, "body too large or bad Content-Length")
    body = await reader.readexactly(int(length_text)) if int(length_text) else b""
    return parts[0], parts[1], headers, body


async def handle_connection(
    node: Node, table: ConnectionTable, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """One request, one response, all within ``REQUEST_TIMEOUT_S`` plus the
    longest ping; at most ``MAX_CONNECTIONS`` at once, the oldest idle one
    making way for a new one."""
    transport = writer.transport
    if not table.admit(transport):
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        writer.close()
        return
    try:
        await asyncio.wait_for(_respond(node, reader, writer, table), REQUEST_TIMEOUT_S + 60)
    except (TimeoutError, ConnectionError, asyncio.CancelledError):
        pass
    finally:
        table.release(transport)
        writer.close()


async def _respond(
    node: Node, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, table: ConnectionTable
) -> None:
    status, content_type = 500, "application/json"
    payload: Any = {"error": "internal error"}
    try:
        method, target, _, raw = await asyncio.wait_for(_read_request(reader), REQUEST_TIMEOUT_S)
        table.busy(writer.transport)
        split = urlsplit(target)
        handler = ROUTES.get((method, split.path))
        if handler is None:
            allowed = [m for (m, p) in ROUTES if p == split.path]
            raise HTTPError(405 if allowed else 404, f"no route for {method} {split.path}")
        try:
            body = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise HTTPError(400, "body is not JSON") from None
        status, result = await handler(node, parse_qs(split.query), body)
        if isinstance(result, str):
            payload, content_type = result, "text/plain; version=0.0.4"
        else:
            payload = result
    except HTTPError as exc:
        status, payload = exc.status, {"error": str(exc)}
    except (asyncio.LimitOverrunError, ValueError):  # ValueError: the stream's limit, from readuntil
        status, payload = 431, {"error": "request head too large"}
    except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
        return
    except Exception:  # the admin API must not take the node down with it
        log.exception("admin request failed")
    data = (payload if isinstance(payload, str) else json.dumps(payload, indent=1) + "\n").encode()
    reason = {
        200: "OK",
        400: "Bad Request",
        404: "Not Found",
        405: "Method Not Allowed",
        413: "Content Too Large",
        431: "Request Header Fields Too Large",
    }.get(status, "Error")
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(data)}\r\n"
        "Connection: close\r\n\r\n".encode()
        + data
    )
    with contextlib.suppress(ConnectionError):
        await writer.drain()


async def start_admin(node: Node, host: str, port: int) -> asyncio.Server:
    table = ConnectionTable(MAX_CONNECTIONS)
    server = await asyncio.start_server(
        lambda r, w: handle_connection(node, table, r, w), host, port, limit=MAX_HEAD_BYTES
    )
    bound = server.sockets[0].getsockname() if server.sockets else (host, port)
    log.info("admin API listening", address=f"http://{bound[0]}:{bound[1]}")
    return server
