"""What the admin API shows and does: one handler per route, over the node's state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from router import __version__
from router.daemon.admin.errors import HTTPError
from router.daemon.admin.page import get_page
from router.daemon.build import is_compiled
from router.daemon.node import Node
from router.daemon.settings import SETTINGS
from router.links.uri import URIError
from router.sessions.session import Session
from router.wire.errors import EncodeError
from router.wire.extension import extension_names
from router.wire.keys import PublicKey, key_from_hex

Handler = Callable[[Node, dict[str, list[str]], Any], Awaitable[tuple[int, Any]]]


def status_view(node: Node) -> dict[str, Any]:
    core = node.core
    root_key, root_seq = core.root()
    parent = core.parent
    return {
        "version": __version__,
        "build": "compiled" if is_compiled() else "pure",
        "quic_engine": node.config.quic_engine,
        "key": core.key.hex(),
        "root": {"key": root_key.hex(), "sequence": root_seq},
        "coordinates": list(core.coordinates()),
        "depth": len(core.coordinates()),
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
        "routing": dict(core.stats),
        "counters": dict(node.counters),
    }


def peers_view(node: Node) -> list[dict[str, Any]]:
    out = []
    core = node.core
    now = node.loop.time()
    for port, link in sorted(node.links.items()):
        ann = core.announcements.get(port)
        rtt = link.rtt_s()
        waits = link.traffic.sojourn_quantiles()
        kernel = link.kernel_queues()
        static = node.static_peers.get(link.outbound) if link.outbound is not None else None
        out.append(
            {
                "port": port,
                "key": core.peer_keys[port].hex() if port in core.peer_keys else None,
                "uri": link.outbound or f"{link.scheme}://{link.remote}",
                "inbound": link.outbound is None,
                "direction": "inbound" if link.outbound is None else "outbound",
                "link_type": link.kind,
                "uptime_s": None if link.established_at is None else round(now - link.established_at, 3),
                "rtt_ms": None if rtt is None else round(rtt * 1000, 3),
                "coordinates": list(ann.peer_coordinates) if ann else None,
                "is_parent": port == core.parent,
                "extensions": extension_names(core.peer_extensions.get(port, 0)),
                "bytes_in": link.bytes_in,
                "bytes_out": link.bytes_out,
                "frames_in": link.frames_in,
                "frames_out": link.frames_out,
                "queue_depth": link.queue_depth,
                "queue_bytes": link.traffic.size,
                "queue_wait_p50_ms": None if waits is None else round(waits[0] * 1000, 3),
                "queue_wait_p99_ms": None if waits is None else round(waits[1] * 1000, 3),
                "kernel_unread_bytes": None if kernel is None else kernel[0],
                "kernel_unsent_bytes": None if kernel is None else kernel[1],
                "kernel_send_buffer_bytes": link.send_buffer or None,
                "dropped": link.dropped,
                "dropped_late": link.traffic.late,
                "static": static.source.value if static is not None else None,
            }
        )
    for uri, peer in sorted(node.static_peers.items()):
        if peer.covered_by is not None and not peer.covered_by.closed:
            continue  # connected through the neighbour's own dial, listed above
        if peer.link is None or peer.link.port == 0:
            out.append(
                {
                    "uri": uri,
                    "connected": False,
                    "attempts": peer.attempts,
                    "last_error": peer.last_error,
                    "static": peer.source.value,
                }
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
                "lifetime_s": e.lifetime,
            }
            for e in core.routes.values()
        ],
    }


def config_view(node: Node) -> list[dict[str, Any]]:
    """Every setting's effective value and where it came from (a password in a
    database URL is not shown)."""
    rows = []
    for setting in SETTINGS:
        value = getattr(node.config, setting.name)
        if isinstance(value, str) and "://" in value:
            value = _without_password(value)
        rows.append(
            {
                "name": setting.name,
                "value": list(value) if isinstance(value, tuple) else value,
                "source": node.config_sources.get(setting.name, "default"),
                "section": setting.section.value,
            }
        )
    return rows


SECRET_PARAMETERS = frozenset({"password", "sslpassword"})


def _without_password(url: str) -> str:
    """``url`` with any password (in its credentials or its query) shown as ***."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, True)
    if parts.password is None and not any(k.lower() in SECRET_PARAMETERS for k, _ in query):
        return url  # as given (a round trip through urlunsplit would change sqlite:////path)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    masked = [(k, "***" if k.lower() in SECRET_PARAMETERS else v) for k, v in query]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(masked, safe="*"), parts.fragment))


async def get_config(node: Node, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    return 200, config_view(node)


async def get_status(node: Node, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    return 200, status_view(node)


async def get_peers(node: Node, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    return 200, peers_view(node)


async def post_peers(node: Node, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    """Keep a peer connected; saved across restarts unless ``"save": false``."""
    uri = body.get("uri") if isinstance(body, dict) else None
    save = body.get("save", True) if isinstance(body, dict) else True
    if not isinstance(uri, str) or not isinstance(save, bool):
        raise HTTPError(400, 'expected {"uri": "tcp://host:port", "save": true or false}')
    try:
        parsed = node.add_static_peer(uri, save=save)
    except URIError as exc:
        raise HTTPError(400, str(exc)) from None
    except OSError as exc:
        where = node.saved_peers.path
        raise HTTPError(500, f"cannot save the peer in {where}: {exc.strerror or exc}") from None
    peer = node.static_peers.get(str(parsed))
    return 200, {"added": str(parsed), "source": peer.source.value if peer else None}


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
    except OSError as exc:
        where = node.saved_peers.path
        raise HTTPError(500, f"removed, but cannot update {where}: {exc.strerror or exc}") from None
    if removed is None:
        raise HTTPError(404, f"{uri} is not a configured peer")
    return 200, {"removed": str(removed.uri), "source": removed.source.value}


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


def _session_rows(sessions: Collection[Session], now: float) -> list[dict[str, Any]]:
    return [
        {
            "key": session.key.hex(),
            "protocol": session.alpn,
            "direction": "outbound" if session.outbound else "inbound",
            "state": session.state.name.lower(),
            "established": session.was_established,
            "closing": session.is_closed,
            "streams": len(session.streams),
            "bytes_sent": session.bytes_sent,
            "bytes_received": session.bytes_received,
            "rtt_ms": round(session.rtt_s * 1000, 2) if session.rtt_s is not None else None,
            "quiet_s": round(now - session.last_heard_at, 3),
        }
        for session in sessions
    ]


async def get_sessions(node: Node, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    return 200, {
        "sessions": _session_rows(node.sessions.open_sessions, node.loop.time()),
        "counters": dict(node.sessions.counters),
        "drops": dict(node.sessions.drops),
    }


async def get_gateway(node: Node, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    return 200, node.gateway.status()


async def get_relay(node: Node, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    client = node.relay_client
    out: dict[str, Any] = {
        "relays": [k.hex() for k in client.settings.relays],
        "registered": sorted(k.hex() for k in client.registered),
        "record_published": client.own is not None,
        "records_held": len(client.records.book),
        "client_counters": dict(client.counters),
        "serving": node.relay_service is not None,
    }
    service = node.relay_service
    if service is not None:
        stats = await service.store_stats()
        out["store"] = {"mailboxes": stats.mailboxes, "envelopes": stats.envelopes, "bytes": stats.bytes}
        out["service_counters"] = dict(service.counters)
    return 200, out


async def get_metrics(node: Node, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    # prometheus_client is loaded by the first scrape, not by every node at start.
    from router.daemon.admin.metrics import render_metrics  # noqa: PLC0415

    stats = await node.relay_service.store_stats() if node.relay_service is not None else None
    return 200, render_metrics(node, stats)


ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", "/status"): get_status,
    ("GET", "/config"): get_config,
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
    ("GET", "/"): get_page,
    ("HEAD", "/"): get_page,
}
