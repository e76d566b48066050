"""Pinecone sessions between Go reference routers and Pinewood, both ways.

The network is pa -- gt -- gs: pa is a Pinewood router with the homeserver
gateway (its federation proxy, and a stand-in homeserver behind its inbound
side), gt a Go router that only forwards, and gs a Go router running the
reference's sessions with protocol ``matrix``: an HTTP server over sessions
(answering like the stand-in homeserver) and an HTTP client over sessions.

* Go to Pinewood: gs's sessions HTTP client, by pa's key, through pa's inbound
  gateway to the stand-in homeserver.
* Pinewood to Go: a client of pa's proxy (CONNECT with TLS inside, as Synapse
  sends it, and SOCKS5, as Conduit does) by gs's server name, to gs's sessions
  HTTP server.

Bodies are checked by SHA-256, 10 MiB each way, and 50 requests at once.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bench.daemons import free_port, wait_until
from router.matrix.names import server_name
from router.sessions.endpoint import PROBE_IDLE_S
from tests.integration.test_gateway import (
    BYTES_PATH,
    FakeHomeserver,
    Overlay,
    connect_request,
    pattern,
    signed,
    socks5_socket,
    tls_context,
)
from tests.interop.conftest import gopeer_or_skip
from tests.interop.gopeer import GOPEER_BUILDS, GoPeer
from tests.interop.mixed import MixedNet

MB = 1 << 20
CONCURRENT = 50


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class SessionNet:
    net: MixedNet
    overlay: Overlay
    """pa's proxy, as the gateway tests address it, naming gs."""
    gs: GoPeer
    pa_key: str


@pytest.fixture
def homeserver() -> Iterator[ThreadingHTTPServer]:
    ThreadingHTTPServer.request_queue_size = 512
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHomeserver)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def session_net(net: MixedNet, homeserver: ThreadingHTTPServer) -> SessionNet:
    proxy_port = free_port()
    net.plan_pinewood("pa")
    gt = net.start_go("gt", peers=[net.pinewood_uri("pa")])
    gs = net.start_go("gs", app="sessions", peers=[gt.tcp_uri])
    pa = net.start_pinewood(
        "pa",
        extra=[
            f"--gateway-listen=127.0.0.1:{proxy_port}",
            f"--homeserver=http://127.0.0.1:{homeserver.server_address[1]}",
            "--session-timeout=5",
        ],
    )
    net.order = ["pa", "gt", "gs"]
    net.wait_converged(timeout=30)
    overlay = Overlay(
        net.pinewood,
        ("127.0.0.1", proxy_port),
        server_name(bytes.fromhex(gs.key)),
        pa.data_dir / "gateway" / "gateway-ca.pem",
        server_name(bytes.fromhex(pa.key)),
    )
    return SessionNet(net, overlay, gs, pa.key)


@pytest.fixture(params=list(GOPEER_BUILDS))
def sessions(
    request: pytest.FixtureRequest, tmp_path: Path, homeserver: ThreadingHTTPServer
) -> Iterator[SessionNet]:
    """The network, once with each quic-go the reference is built with."""
    net = MixedNet(tmp_path, gopeer_or_skip(request.param))
    try:
        yield session_net(net, homeserver)
    finally:
        net.stop_all()


def check_go_answer(answer: dict[str, Any], body: bytes) -> None:
    assert "error" not in answer, answer
    assert answer["status"] == 200, answer
    assert (answer["length"], answer["sha256"]) == (len(body), sha256(body)), answer


def test_go_sessions_client_through_pinewood_inbound_gateway(sessions: SessionNet) -> None:
    gs, key = sessions.gs, sessions.pa_key
    path = "/_matrix/federation/v1/send/1"
    origin = signed(server_name(bytes.fromhex(gs.key)))  # what gs's homeserver would sign
    # 10 MiB up (echoed back by the stand-in homeserver), then 10 MiB down.
    answer = gs.http(key, "POST", path, body_size=10 * MB, headers=origin)
    check_go_answer(answer, pattern(10 * MB))
    assert answer["headers"]["X-Path"] == [path]
    check_go_answer(gs.http(key, "GET", f"{BYTES_PATH}{10 * MB}"), pattern(10 * MB))
    # The inbound gateway checks what a Go node sends as it checks any other.
    forged = gs.http(key, "POST", path, body_size=10, headers=signed(server_name(bytes.fromhex(key))))
    assert forged["status"] == 401, forged
    assert gs.http(key, "GET", "/_matrix/client/versions")["status"] == 404

    def one(i: int) -> dict[str, Any]:
        return gs.http(key, "POST", f"/_matrix/federation/v1/send/r{i}", body_size=1000 + i, headers=origin)

    with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
        answers = list(pool.map(one, range(CONCURRENT)))
    for i, answer in enumerate(answers):
        check_go_answer(answer, pattern(1000 + i))
        assert answer["headers"]["X-Path"] == [f"/_matrix/federation/v1/send/r{i}"]
    inbound = sessions.net.pinewood.daemons["pa"].api("GET", "/gateway")["inbound_counters"]
    assert inbound["streams served"] >= 2 + CONCURRENT


def test_pinewood_gateway_to_go_sessions_server(sessions: SessionNet) -> None:
    o, gs = sessions.overlay, sessions.gs
    body = os.urandom(10 * MB)
    answer = connect_request(o, "POST", "/_matrix/federation/v1/send/1", body)
    assert answer.status == 200 and sha256(answer.body) == sha256(body)
    assert answer.headers["X-Served-By"] == gs.key
    assert answer.headers["X-Path"] == "/_matrix/federation/v1/send/1"
    answer = connect_request(o, "GET", f"/bytes/{10 * MB}")  # the Go stand-in's own path
    assert sha256(answer.body) == sha256(pattern(10 * MB))

    # SOCKS5, TLS inside, as Conduit sends it.
    raw = socks5_socket(o, o.name, 8448)
    with tls_context(o.ca).wrap_socket(raw, server_hostname=o.name) as sock:
        conn = http.client.HTTPConnection(o.name, 8448, timeout=60)
        conn.sock = sock
        conn.request("POST", "/_matrix/federation/v1/send/echo", body=body)
        response = conn.getresponse()
        assert response.status == 200 and sha256(response.read()) == sha256(body)
        assert response.getheader("X-Served-By") == gs.key
        conn.close()

    def one(i: int) -> bytes:
        answer = connect_request(o, "POST", f"/_matrix/federation/v1/send/r{i}", f"request {i}".encode() * 50)
        assert answer.status == 200, answer
        return answer.body

    with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
        answers = list(pool.map(one, range(CONCURRENT)))
    assert answers == [f"request {i}".encode() * 50 for i in range(CONCURRENT)]
    served = gs.status()["served"]
    assert served >= 3 + CONCURRENT
    sessions_of_gs = gs.status()["sessions"]
    assert sessions.pa_key in sessions_of_gs


# ---------------------------------------------------------------- restarts

SEND = "/_matrix/federation/v1/send/"
RESTART_ANSWER_S = 3.0
"""A request to a node that restarted since the last one is carried on a fresh session within this."""


def request_after_restart(o: Overlay) -> tuple[float, int | None, bytes, str]:
    """One CONNECT request; its time, and its status and body, or the error that ended it."""
    started = time.monotonic()
    try:
        answer = connect_request(o, "POST", "/_matrix/federation/v1/send/after-restart", b"after a restart")
    except (OSError, http.client.HTTPException) as exc:
        return time.monotonic() - started, None, b"", f"{type(exc).__name__}: {exc}"
    return time.monotonic() - started, answer.status, answer.body, ""


def assert_clear_answer(seconds: float, status: int | None, body: bytes, error: str) -> None:
    assert not error, f"no HTTP answer after {seconds:.1f} s: {error}"
    assert status in (200, 504), (status, body)
    if status == 504:
        assert body.strip(), "a 504 without a reason"
    assert seconds <= RESTART_ANSWER_S, f"answered {status} after {seconds:.1f} s"


def test_go_node_restarts_while_pinewood_holds_a_session(sessions: SessionNet) -> None:
    """The quiet session is probed before reuse; the restarted Go node does not
    answer for it, so a fresh session carries the request.  (A request sent
    within PROBE_IDLE_S of the last packet from a node that restarted in that
    time is not probed, and waits for QUIC's idle timeout: docs/design.md.)"""
    o, gs = sessions.overlay, sessions.gs
    assert connect_request(o, "POST", "/_matrix/federation/v1/send/before", b"before").status == 200
    gs.restart()
    sessions.net.wait_converged(timeout=30)
    pa = sessions.net.pinewood.daemons["pa"]

    def quiet() -> bool:
        rows = pa.api("GET", "/sessions")["sessions"]
        return all(r["quiet_s"] > PROBE_IDLE_S for r in rows if r["key"] == gs.key)

    wait_until(quiet, 10, "pa's session with the old gs quiet for longer than PROBE_IDLE_S")
    seconds, status, body, error = request_after_restart(o)
    assert_clear_answer(seconds, status, body, error)
    assert status == 200, (status, body)


def test_a_go_session_to_a_restarted_pinewood_node_is_reset_at_once(sessions: SessionNet) -> None:
    """The restarted node answers the stale session's packets with a stateless
    reset, so the Go side drops that session within a round trip or two instead
    of QUIC's 15 s idle timeout.  If the reset comes before the Go client's next
    request, the request goes on a fresh session and succeeds; if the request
    itself meets it, the reference's HTTP client does not retry a POST, so that
    one request errors, at once, and the next succeeds."""
    gs, key = sessions.gs, sessions.pa_key
    origin = signed(server_name(bytes.fromhex(gs.key)))
    check_go_answer(gs.http(key, "POST", SEND + "before", body_size=100, headers=origin), pattern(100))
    sessions.net.restart_pinewood("pa")
    sessions.net.wait_converged(timeout=30)
    first = gs.http(key, "POST", SEND + "after-restart", body_size=100, timeout_s=30, headers=origin)
    assert first["seconds"] <= RESTART_ANSWER_S, first
    second = gs.http(key, "POST", SEND + "after-restart-again", body_size=100, timeout_s=30, headers=origin)
    assert second["seconds"] <= RESTART_ANSWER_S, second
    check_go_answer(second, pattern(100))
    pa = sessions.net.pinewood.daemons["pa"]
    drops = pa.api("GET", "/sessions")["drops"]
    if "error" in first:  # reset, as expected of the reference's client
        assert drops.get("for no known session (answered with a stateless reset)", 0) >= 1, drops


def test_requests_after_both_restarts_succeed_once_sessions_are_new(sessions: SessionNet) -> None:
    """Whatever the first request after a restart gets, the overlay recovers: within
    QUIC's idle timeout, requests both ways succeed on fresh sessions."""
    o, gs, key = sessions.overlay, sessions.gs, sessions.pa_key
    gs.restart()
    sessions.net.wait_converged(timeout=30)
    wait_until(lambda: request_after_restart(o)[1] == 200, 60, "a request to gs after its restart")
    sessions.net.restart_pinewood("pa")
    sessions.net.wait_converged(timeout=30)
    wait_until(
        lambda: gs.http(key, "GET", "/_matrix/federation/v1/version", timeout_s=20).get("status") == 200,
        60,
        "a request from gs to pa after pa's restart",
    )
