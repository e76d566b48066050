"""The admin API: JSON over HTTP/1.1 on 127.0.0.1, and Prometheus metrics.

The server is :mod:`router.daemon.admin.server`, the routes and what they show
:mod:`router.daemon.admin.views`, the metrics :mod:`router.daemon.admin.metrics`.

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

from router.daemon.admin.server import start_admin

__all__ = ["start_admin"]
