"""A static peer that restarts is peered with again at once, through real processes.

Node a has b as a static peer and runs the homeserver gateway; b pipes
inbound federation to a small HTTP server standing in for a homeserver.  b
stops, stays down for two seconds and starts again on the same port with the
same key.  Measured from the moment b's admin API answers: the first overlay
ping from a that b answers, and a federation request sent through a's
gateway to b's key at that moment.
"""

from __future__ import annotations

import http.client
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.daemons import Daemon, DaemonNet, free_port, wait_until

DOWN_S = 2.0
"""How long b stays down."""
PEERED_AGAIN_S = 1.0
"""The most a may take, after b is up, to have its ping answered."""
REQUEST_ANSWERED_S = 1.5
"""The most a request sent as b comes up may take to be answered."""
PING_TIMEOUT_S = 0.1
"""Each ping's wait: the resolution of the first figure."""


class Homeserver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"hello from the homeserver"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def homeserver() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Homeserver)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def request(proxy_port: int, key: str) -> tuple[int, bytes]:
    """A federation request to the node ``key`` through the gateway (absolute form)."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=30)
    try:
        conn.request("GET", f"http://{key}/_matrix/federation/v1/version")
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def answered_at(proxy_port: int, key: str) -> tuple[int, bytes, float]:
    status, body = request(proxy_port, key)
    return status, body, time.monotonic()


def ping(a: Daemon, b: Daemon) -> bool:
    answer = a.api("POST", "/ping", {"key": b.key, "timeout": PING_TIMEOUT_S})
    return answer["rtt_ms"] is not None


def nowhere(node: Daemon) -> int:
    """The frames ``/status`` counts as sent to a key with no node and no route."""
    status = node.api("GET", "/status")
    return int(status["drops"].get("no route", 0) + status["counters"].get("frames for absent keys", 0))


def refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    except ConnectionRefusedError:
        return True
    return False


def test_restarted_static_peer_is_peered_with_and_reached_at_once(
    net: DaemonNet, homeserver: int, tmp_path: Path
) -> None:
    net.start(["b"], [], extra=[f"--homeserver=http://127.0.0.1:{homeserver}"])
    b = net.daemons["b"]
    proxy_port = free_port()
    net.start(["a"], [], extra=[f"--peer={b.uri}", f"--gateway-listen=127.0.0.1:{proxy_port}"])
    a = net.daemons["a"]
    wait_until(lambda: ping(a, b), 20, "a's ping answered by b")
    # As a homeserver would, a has talked to b before: it holds a session with it.
    assert request(proxy_port, b.key)[0] == 200

    net.kill("b", signal.SIGTERM)
    wait_until(lambda: a.api("GET", "/status")["peers"] == 0, 10, "a's peering with b gone")
    down_at = time.monotonic()
    # Meanwhile a ping to b's key has nowhere to go: it is counted, with its
    # reason.  The session a held with b may send to b's key meanwhile too (a
    # QUIC retransmission, counted the same way): of three pings, one must be
    # counted alone, and none may go uncounted.
    counted = []
    for _ in range(3):
        before = nowhere(a)
        assert not ping(a, b)
        counted.append(nowhere(a) - before)
        if counted[-1] == 1:
            break
    assert counted[-1] == 1 and min(counted) >= 1, (counted, a.api("GET", "/status"))
    wait_until(lambda: time.monotonic() - down_at >= DOWN_S and refuses(b.port), 10, "b down for a while")

    net.launch(b, b.extra_args)
    net.wait_up(b)
    up_at = time.monotonic()
    with ThreadPoolExecutor(1) as pool:
        sent: Future[tuple[int, bytes, float]] = pool.submit(answered_at, proxy_port, b.key)
        wait_until(lambda: ping(a, b), 20, "a's ping answered by b again", interval=0.0)
        pinged = time.monotonic() - up_at
        status, body, at = sent.result(timeout=30)
    answered = at - up_at
    print(f"after b was up: ping answered in {pinged:.3f} s, gateway request in {answered:.3f} s")
    assert status == 200 and body == b"hello from the homeserver"
    assert pinged <= PEERED_AGAIN_S, f"a's ping answered {pinged:.3f} s after b was up"
    assert answered <= REQUEST_ANSWERED_S, f"the request answered {answered:.3f} s after b was up"
