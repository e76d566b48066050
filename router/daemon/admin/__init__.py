"""The admin API: JSON over HTTP/1.1 on 127.0.0.1, and Prometheus metrics.

The server is :mod:`router.daemon.admin.server`, the routes and what they show
:mod:`router.daemon.admin.views`, the metrics :mod:`router.daemon.admin.metrics`,
the status page :mod:`router.daemon.admin.page`.

    GET    /                 the status page (HTML, refreshing itself from the routes below)
    GET    /status           the node: key, version, uptime, root, coordinates, parent, counters
    GET    /config           every setting's effective value and where it came from
    GET    /peers            every peering: direction, uptime, RTT, bytes, frames, queue, drops
    POST   /peers            {"uri": "tcp://host:port", "save": true}: add a static peer
                             (saved in data_dir/peers.json unless "save" is false)
    DELETE /peers?uri=URI    remove a static peer (and forget it if it was saved)
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
