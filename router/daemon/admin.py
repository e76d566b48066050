"""The admin API: JSON over HTTP/1.1 on 127.0.0.1, and Prometheus metrics.

A deliberately small server (no framework): one request per connection,
bounded request line, headers and body, and a fixed table of routes.

    GET    /status           the node: key, root, coordinates, parent, counters
    GET    /peers            every peering with its counters
    POST   /peers            {"uri": "tcp://host:port"}: add a static peer
    DELETE /peers?uri=URI    remove a static peer
    GET    /snake            descending neighbour and route entries
    GET    /coords           the coordinates cache
    POST   /ping             {"key": HEX, "timeout": S}: one overlay round trip
    GET    /sessions         end-to-end sessions: peer key, protocol, streams, bytes, RTT
    GET    /gateway          the homeserver gateway: server name, proxy, CA, counters
    GET    /relay            relay: our mailboxes and record; the store and counters if serving
    POST   /relay/lookup     {"key": HEX, "fresh": bool}: a node's relay record, as senders find it
    GET    /metrics          Prometheus text format
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog

from relay.stores.base import StoreStats
from router import __version__
from router.daemon.node import Node
from router.http.connection_table import ConnectionTable
from router.links.uri import URIError
from router.wire.errors import EncodeError
from router.wire.keys import PublicKey, key_from_hex

MAX_HEAD_BYTES = 8192
MAX_CONNECTIONS = 64
MAX_BODY_BYTES = 65536
REQUEST_TIMEOUT_S = 10.0

log = structlog.get_logger("pinewood.admin")


Handler = Callable[[Node, dict[str, list[str]], Any], Awaitable[tuple[int, Any]]]


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def status_view(node: Node) -> dict[str, Any]:
    core = node.core
    root_key, root_seq = core.root()
    parent = core.parent
    return {
        "version": __version__,
        "key": core.key.hex(),
        "root": {"key": root_key.hex(), "sequence": root_seq},
        "coordinates": list(core.coordinates()),
        "parent": {"port": parent, "key": core.peer_keys[parent].hex()} if parent is not None else None,
        "descending": core.descending.key.hex() if core.descending else None,
        "peers": len(node.links),
        "listen": [f"{scheme}://{h}:{p}" for scheme, h, p in node.listen_addresses],
        "uptime_s": round(node.loop.time() - node.started_at, 3),
        "traffic": {
            "forwarded": core.traffic.forwarded,
            "delivered": core.traffic.delivered,
            "sent": core.traffic.sent,
            "decision_cache_hits": core.traffic.hits,
            "decision_cache_misses": core.traffic.misses,
        },
        "drops": dict(core.drops),
        "counters": dict(node.counters),
    }


def peers_view(node: Node) -> list[dict[str, Any]]:
    out = []
    for port, link in sorted(node.links.items()):
        core = node.core
        ann = core.announcements.get(port)
        out.append(
            {
                "port": port,
                "key": core.peer_keys[port].hex() if port in core.peer_keys else None,
                "uri": link.outbound or f"{link.scheme}://{link.remote}",
                "inbound": link.outbound is None,
                "link_type": link.kind,
                "coordinates": list(ann.peer_coordinates) if ann else None,
                "is_parent": port == core.parent,
                "bytes_in": link.bytes_in,
                "bytes_out": link.bytes_out,
                "frames_in": link.frames_in,
                "frames_out": link.frames_out,
                "queue_depth": link.queue_depth,
                "dropped": link.dropped,
            }
        )
    for uri, peer in sorted(node.static_peers.items()):
        if peer.link is None or peer.link.port == 0:
            out.append(
                {"uri": uri, "connected": False, "attempts": peer.attempts, "last_error": peer.last_error}
            )
    return out


def snake_view(node: Node) -> dict[str, Any]:
    core = node.core
    now = node.loop.time()
    return {
        "descending": core.descending.key.hex() if core.descending else None,
        "routes": [
            {
                "key": e.key.hex(),
                "source_port": e.source,
                "destination_port": e.destination,
                "sequence": e.sequence,
                "age_s": round(now - e.last_seen, 3),
            }
            for e in core.routes.values()
        ],
    }


async def get_status(node: Node, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    return 200, status_view(node)


async def get_peers(node: Node, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    return 200, peers_view(node)


async def post_peers(node: Node, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    uri = body.get("uri") if isinstance(body, dict) else None
    if not isinstance(uri, str):
        raise HTTPError(400, 'expected {"uri": "tcp://host:port"}')
    try:
        parsed = node.add_static_peer(uri)
    except URIError as exc:
        raise HTTPError(400, str(exc)) from None
    return 200, {"added": str(parsed)}


async def delete_peers(node: Node, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    uri: object = query["uri"][0] if query.get("uri") else None
    if uri is None and isinstance(body, dict):
        uri = body.get("uri")
    if not isinstance(uri, str):
        raise HTTPError(400, "expected ?uri=URI")
    try:
        removed = node.remove_static_peer(uri)
    except URIError as exc:
        raise HTTPError(400, str(exc)) from None
    if not removed:
        raise HTTPError(404, f"{uri} is not a configured peer")
    return 200, {"removed": uri}


async def get_snake(node: Node, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    return 200, snake_view(node)


async def get_coords(node: Node, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    now = node.loop.time()
    cache = node.core.traffic.coords_cache
    return 200, [
        {"key": k.hex(), "coordinates": list(c), "age_s": round(now - t, 3)} for k, (c, t, _) in cache.items()
    ]


def _key_argument(body: Any) -> PublicKey:
    """The ``key`` of a JSON body, or a 400 that says what was expected."""
    if not isinstance(body, dict) or not isinstance(body.get("key"), str):
        raise HTTPError(400, 'expected {"key": "64 hex characters"}')
    try:
        return key_from_hex(body["key"])
    except EncodeError as exc:
        raise HTTPError(400, str(exc)) from None


async def post_ping(node: Node, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    key = _key_argument(body)
    timeout = body.get("timeout", 2.0)
    if not isinstance(timeout, int | float) or not 0 < timeout <= 60:
        raise HTTPError(400, "timeout must be a number of seconds from 0 to 60")
    rtt = await node.ping(key, float(timeout))
    return 200, {"key": key.hex(), "rtt_ms": None if rtt is None else round(rtt * 1000, 3)}


async def post_relay_lookup(node: Node, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    """Find a node's relay record in key space, as a sender would ("fresh": skip our cache)."""
    key = _key_argument(body)
    record = await node.relay_client.lookup(bytes(key), fresh=bool(body.get("fresh", False)))
    if record is None:
        return 200, {"key": key.hex(), "record": None}
    return 200, {
        "key": key.hex(),
        "record": {
            "issued_ms": record.issued_ms,
            "expires": record.expires,
            "relays": [{"relay": e.relay.hex(), "mailbox": e.mailbox.hex()} for e in record.relays],
        },
    }


async def get_sessions(node: Node, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    return 200, {
        "sessions": node.sessions.session_list(),
        "counters": dict(node.sessions.counters),
        "drops": dict(node.sessions.endpoint.drops),
    }


async def get_gateway(node: Node, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    return 200, node.gateway.status()


async def get_relay(node: Node, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    client = node.relay_client
    out: dict[str, Any] = {
        "relays": [k.hex() for k in client.settings.relays],
        "registered": sorted(k.hex() for k in client.registered),
        "record_published": client.own is not None,
        "records_held": len(client.book),
        "client_counters": dict(client.counters),
        "serving": node.relay_service is not None,
    }
    service = node.relay_service
    if service is not None:
        stats = await service.store.stats()
        out["store"] = {"mailboxes": stats.mailboxes, "envelopes": stats.envelopes, "bytes": stats.bytes}
        out["service_counters"] = dict(service.counters)
    return 200, out


async def get_metrics(node: Node, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    stats = await node.relay_service.store.stats() if node.relay_service is not None else None
    return 200, render_metrics(node, stats)


ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", "/status"): get_status,
    ("GET", "/peers"): get_peers,
    ("POST", "/peers"): post_peers,
    ("DELETE", "/peers"): delete_peers,
    ("GET", "/snake"): get_snake,
    ("GET", "/coords"): get_coords,
    ("POST", "/ping"): post_ping,
    ("GET", "/sessions"): get_sessions,
    ("GET", "/gateway"): get_gateway,
    ("GET", "/relay"): get_relay,
    ("POST", "/relay/lookup"): post_relay_lookup,
    ("GET", "/metrics"): get_metrics,
}


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def render_metrics(node: Node, relay_stats: StoreStats | None = None) -> str:
    core = node.core
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP pinewood_{name} {help_text}")
        lines.append(f"# TYPE pinewood_{name} {kind}")
        for labels, value in samples:
            lines.append(f"pinewood_{name}{labels} {value}")

    metric("peers", "gauge", "Established peerings.", [("", len(node.links))])
    metric("root_sequence", "gauge", "Sequence of the current root announcement.", [("", core.root()[1])])
    metric("tree_depth", "gauge", "Length of this node's coordinates.", [("", len(core.coordinates()))])
    metric("snake_routes", "gauge", "Route entries in the snake table.", [("", len(core.routes))])
    metric(
        "coords_cache_entries",
        "gauge",
        "Entries in the coordinates cache.",
        [("", len(core.traffic.coords_cache))],
    )
    metric(
        "uptime_seconds",
        "gauge",
        "Seconds since the node started.",
        [("", node.loop.time() - node.started_at)],
    )
    traffic = core.traffic
    metric(
        "traffic_frames_total",
        "counter",
        "Traffic frames by what happened to them.",
        [
            ('{action="forwarded"}', traffic.forwarded),
            ('{action="delivered"}', traffic.delivered),
            ('{action="sent"}', traffic.sent),
        ],
    )
    metric(
        "drops_total",
        "counter",
        "Frames dropped and peerings closed by the routing core, by reason.",
        [(f'{{reason="{_label(r)}"}}', v) for r, v in sorted(core.drops.items())],
    )
    metric(
        "node_events_total",
        "counter",
        "Runtime events, by kind.",
        [(f'{{event="{_label(r)}"}}', v) for r, v in sorted(node.counters.items())],
    )
    per_peer: dict[str, list[tuple[str, float]]] = {
        "peer_bytes_in_total": [],
        "peer_bytes_out_total": [],
        "peer_frames_in_total": [],
        "peer_frames_out_total": [],
        "peer_queue_depth": [],
        "peer_dropped_total": [],
    }
    for port, link in sorted(node.links.items()):
        key = core.peer_keys.get(port, b"").hex()
        labels = f'{{port="{port}",key="{key}",link_type="{link.kind}"}}'
        per_peer["peer_bytes_in_total"].append((labels, link.bytes_in))
        per_peer["peer_bytes_out_total"].append((labels, link.bytes_out))
        per_peer["peer_frames_in_total"].append((labels, link.frames_in))
        per_peer["peer_frames_out_total"].append((labels, link.frames_out))
        per_peer["peer_queue_depth"].append((labels, link.queue_depth))
        per_peer["peer_dropped_total"].append((labels, link.dropped))
    for name, samples in per_peer.items():
        kind = "gauge" if name == "peer_queue_depth" else "counter"
        metric(name, kind, name.replace("_", " ").capitalize() + ".", samples)
    sessions = node.sessions
    metric("sessions", "gauge", "End-to-end sessions open.", [("", len(sessions.endpoint.sessions))])
    metric(
        "session_events_total",
        "counter",
        "Session events and datagrams dropped by the sessions layer, by kind.",
        [(f'{{event="{_label(r)}"}}', float(v)) for r, v in sorted(sessions.counters.items())]
        + [(f'{{event="dropped: {_label(r)}"}}', v) for r, v in sorted(sessions.endpoint.drops.items())],
    )
    gateway = node.gateway
    gateway_samples: list[tuple[str, float]] = []
    for side, counters in (
        ("outbound", gateway.outbound.counters if gateway.outbound else None),
        ("inbound", gateway.inbound.counters if gateway.inbound else None),
    ):
        if counters is not None:
            gateway_samples += [
                (f'{{side="{side}",event="{_label(r)}"}}', v) for r, v in sorted(counters.items())
            ]
    metric("gateway_events_total", "counter", "Gateway events and bytes, by side.", gateway_samples)
    client = node.relay_client
    metric(
        "relay_client_events_total",
        "counter",
        "This node's relay client: deposits, deliveries, lookups, by kind.",
        [(f'{{event="{_label(r)}"}}', float(v)) for r, v in sorted(client.counters.items())],
    )
    metric(
        "relay_records_held", "gauge", "Relay records this node keeps for others.", [("", len(client.book))]
    )
    service = node.relay_service
    if service is not None and relay_stats is not None:
        metric(
            "relay_envelopes_stored", "gauge", "Envelopes in the relay store.", [("", relay_stats.envelopes)]
        )
        metric(
            "relay_bytes_stored", "gauge", "Bytes of envelopes in the relay store.", [("", relay_stats.bytes)]
        )
        metric("relay_mailboxes", "gauge", "Mailboxes in the relay store.", [("", relay_stats.mailboxes)])
        metric(
            "relay_events_total",
            "counter",
            "Relay service: requests served, envelopes stored, rejects by reason.",
            [(f'{{event="{_label(r)}"}}', float(v)) for r, v in sorted(service.counters.items())],
        )
    return "\n".join(lines) + "\n"


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
